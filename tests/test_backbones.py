"""Checks that run over every registered backbone, from every plugin (over the plugin's `TEST_SAMPLE` where it
declares one)."""

from __future__ import annotations

import pytest
import torch

import zoo_core


def _checked(name: str) -> bool:
    """A plugin that registers very many backbones (zoo-timm: over a thousand, some with billions of parameters)
    declares a `TEST_SAMPLE` of them; its other backbones are left out of these per-backbone checks."""
    catalog = zoo_core.get_catalog()
    plugin = catalog.pm.get_plugin(catalog.plugin_of("backbone", name))
    sample = getattr(plugin, "TEST_SAMPLE", None)
    return sample is None or name in sample


ALL = [name for name in zoo_core.list_backbones() if _checked(name)]
SMALL_INPUT = 64  # big enough for every image backbone's down-sampling; Inception v3 needs 75


def _batch(spec: zoo_core.BackboneSpec, size: int = 2):
    torch.manual_seed(0)
    if spec.modality == "text":
        vocab = spec.options.get("vocab_size", 30522)
        ids = torch.randint(5, min(vocab, 1000), (size, 12))
        mask = torch.ones_like(ids)
        mask[1, 8:] = 0  # a padded sequence
        return {"input_ids": ids, "attention_mask": mask}
    side = 80 if spec.name == "inception_v3" else SMALL_INPUT
    return torch.randn(size, 3, side, side)


def test_at_least_fifteen_backbones_across_families():
    families = {zoo_core.get_backbone(n).family for n in ALL}
    assert len(ALL) >= 15
    assert families >= {"resnet", "vgg", "inception", "alexnet", "bert"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_groups_cover_every_parameter_once_and_forward_has_right_shape(name):
    spec = zoo_core.get_backbone(name)
    model = spec.create_model(num_classes=3, dropout=0.1)
    groups = model.layer_groups()
    assert [g.name for g in groups] == [*spec.group_names, "head"]
    assert len({g.name for g in groups}) == len(groups), "group names must be unique"
    seen: dict[int, str] = {}
    for group in groups:
        for param in group.parameters():
            assert id(param) not in seen, f"a parameter is in both {seen[id(param)]} and {group.name}"
            seen[id(param)] = group.name
    missing = [n for n, p in model.named_parameters() if id(p) not in seen]
    assert not missing, f"parameters in no group: {missing[:5]}"
    assert all(any(True for _ in g.parameters()) for g in groups), "every group holds parameters"
    assert spec.num_params == sum(p.numel() for p in model.backbone.parameters())

    model.train()  # the training-mode path (Inception/GoogLeNet aux outputs) must also give plain logits
    with torch.no_grad():
        batch = _batch(spec)
        logits = model(batch)
        assert logits.shape == (2, 3)
        assert model.features(batch).shape == (2, spec.feature_dim)
        model.eval()
        assert model(batch).shape == (2, 3)
        assert torch.isfinite(model(batch)).all()
