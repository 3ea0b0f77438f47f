from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

import zoo_core
from zoo_core.errors import UnknownNameError, ZooError

GROUPS = ["stem", "layer1", "layer2", "layer3", "layer4", "head"]


def strategy(name, **params):
    return zoo_core.get_strategy(name)(**params)


def test_linear_probe_trains_only_the_head_and_allows_caching():
    s = strategy("linear-probe")
    assert s.frozen_backbone
    assert s.lr_scales(GROUPS, 0) == s.lr_scales(GROUPS, 9) == [0, 0, 0, 0, 0, 1]


def test_freeze_by_name_and_by_position():
    assert strategy("freeze", trainable_from="layer3").lr_scales(GROUPS, 0) == [0, 0, 0, 1, 1, 1]
    assert strategy("freeze", trainable_from=1).lr_scales(GROUPS, 0) == [0, 1, 1, 1, 1, 1]
    assert strategy("freeze").lr_scales(GROUPS, 0) == [0, 0, 0, 0, 1, 1]


def test_freeze_unknown_group_suggests_close_names():
    with pytest.raises(UnknownNameError, match=r"unknown layer group 'layer5'; did you mean layer"):
        strategy("freeze", trainable_from="layer5").check_groups(GROUPS)
    with pytest.raises(ZooError, match="index 9 is out of range"):
        strategy("freeze", trainable_from=9).check_groups(GROUPS)


def test_finetune_layerwise_decay_towards_the_input():
    scales = strategy("finetune", backbone_lr_scale=0.5, layer_decay=0.5).lr_scales(GROUPS, 0)
    assert scales == [0.5 * 0.5**4, 0.5 * 0.5**3, 0.5 * 0.5**2, 0.5 * 0.5, 0.5, 1.0]


def test_finetune_on_mid_level_groups_freezes_the_groups_above_them():
    s = strategy("finetune", backbone_lr_scale=0.5, layer_decay=0.5, feature_groups=["layer2", "layer3"])
    s.check_groups(GROUPS)
    assert s.head_options() == {"feature_groups": ["layer2", "layer3"]}
    assert s.lr_scales(GROUPS, 0) == [0.5 * 0.5**4, 0.5 * 0.5**3, 0.5 * 0.5**2, 0.5 * 0.5, 0.0, 1.0]
    with pytest.raises(UnknownNameError, match="unknown layer group 'layer5'"):
        strategy("finetune", feature_groups=["layer5"]).check_groups(GROUPS)
    with pytest.raises(ZooError, match="cannot include the head"):
        strategy("finetune", feature_groups=["head"]).check_groups(GROUPS)


def test_gradual_unfreeze_adds_one_group_from_the_top():
    s = strategy("gradual-unfreeze", every=2)
    trained = [[bool(x) for x in s.lr_scales(GROUPS, epoch)] for epoch in range(12)]
    assert trained[0] == trained[1] == [False] * 5 + [True]
    assert trained[2] == [False] * 4 + [True] * 2
    assert trained[10] == [True] * 6


def test_bitfit_trains_biases_norms_and_head():
    model = zoo_core.get_backbone("tinynet").create_model(2)
    s = strategy("bitfit")
    trained = []
    for group in model.layer_groups():
        for module in group.modules:
            for _, sub in module.named_modules():
                for p_name, _ in sub.named_parameters(recurse=False):
                    if s.trains_parameter(sub, p_name, group.name):
                        trained.append((group.name, type(sub).__name__, p_name))
    assert ("block1", "Conv2d", "bias") in trained and ("block1", "BatchNorm2d", "weight") in trained
    assert ("block1", "Conv2d", "weight") not in trained
    assert ("head", "Linear", "weight") in trained


def test_scratch_starts_from_random_weights():
    assert not zoo_core.get_strategy("scratch").uses_pretrained
    assert zoo_core.get_strategy("finetune").uses_pretrained


def test_parameters_are_validated_with_field_names():
    with pytest.raises(ValidationError, match="layer_decay"):
        strategy("finetune", layer_decay=1.5)
    with pytest.raises(ValidationError, match="unknown_param"):
        strategy("lora", unknown_param=1)


def test_unknown_strategy_suggests():
    with pytest.raises(UnknownNameError, match="did you mean finetune"):
        zoo_core.get_strategy("fine-tune")


def test_strategies_declare_what_the_engine_reads():
    assert strategy("lora").relation == "adapter" and strategy("lora").requires == ("peft",)
    assert {strategy(n).relation for n in ("linear-probe", "freeze", "finetune", "bitfit")} == {"finetune"}
    assert strategy("finetune").default_warmup_epochs() == 1.0
    assert strategy("finetune", warmup_epochs=0.5, freeze_norm_stats=True).freezes_norm_statistics()
    assert strategy("freeze").default_warmup_epochs() == 0.0 and not strategy("freeze").freezes_norm_statistics()
    assert zoo_core.get_strategy("lora").summary()["relation"] == "adapter"


def test_adapter_targets_come_from_the_backbone_spec():
    import torch

    with torch.device("meta"):
        bert = zoo_core.get_backbone("bert-tiny").build()
        resnet = zoo_core.get_backbone("resnet18").build()
    bert_targets = zoo_core.get_backbone("bert-tiny").adapter_target_names(bert)
    assert bert_targets == ["bert.encoder.layer.0.attention.self.query", "bert.encoder.layer.0.attention.self.value",
                            "bert.encoder.layer.1.attention.self.query", "bert.encoder.layer.1.attention.self.value"]
    resnet_targets = zoo_core.get_backbone("resnet18").adapter_target_names(resnet)
    assert "conv1" not in resnet_targets and "layer1.0.conv1" in resnet_targets  # the stem conv is left out


def test_standardised_head_reads_features_constant_in_training_as_zero():
    """A unit that never varied over the training features (dead on those images) must not blow up elsewhere."""
    from zoo_core.backbone import Head

    head = Head(3, 2, standardize=True)
    head.set_statistics(torch.tensor([[1.0, 0.0, 5.0], [3.0, 0.0, 5.0]]))  # features 1 and 2 constant
    seen = head(torch.tensor([[2.0, 4.0, 9.0]]))
    assert torch.isfinite(seen).all()
    assert torch.allclose(seen, head(torch.tensor([[2.0, 0.0, 5.0]])))  # as if they had their training value
    assert torch.allclose(head.std[0], torch.tensor(2.0).sqrt())  # a varying feature is standardised as before
