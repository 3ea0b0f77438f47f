"""The plugin contract is what the engine needs: a third-party strategy does what `lora` does (its own relation,
a `prepare` step that changes the model, an `export` step that writes files and folds itself away), and a
third-party text backbone brings its own encoder; neither needs a change in the core."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from torch import nn

import zoo_core
from zoo_core.backbone import TextPreprocessing
from zoo_core.plugins import register_plugin, unregister_plugin

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class ScaledConv(nn.Module):
    """A conv whose output channels are multiplied by learned scales (starting at 1)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv
        self.scale = nn.Parameter(torch.ones(conv.out_channels))

    def forward(self, x):
        return self.conv(x) * self.scale.view(1, -1, 1, 1)


class ChannelScale(zoo_core.Strategy):
    """Learn one scale per output channel of every conv; folded into the convs when the checkpoint is written."""

    name = "channel-scale"
    relation = "adapter"

    def lr_scales(self, groups, epoch):
        return [1.0] * len(groups)

    def trains_parameter(self, module, param_name, group):
        return group == "head" or param_name.endswith("scale")

    def prepare(self, model):
        for name, module in list(model.backbone.named_modules()):
            if isinstance(module, nn.Conv2d):
                parent, _, leaf = name.rpartition(".")
                setattr(model.backbone.get_submodule(parent), leaf, ScaledConv(module))

    def export(self, model, folder):
        scales = {}
        for name, module in list(model.backbone.named_modules()):
            if isinstance(module, ScaledConv):
                scales[name] = module.scale.tolist()
                with torch.no_grad():
                    module.conv.weight.mul_(module.scale.view(-1, 1, 1, 1))
                    module.conv.bias.mul_(module.scale)
                parent, _, leaf = name.rpartition(".")
                setattr(model.backbone.get_submodule(parent), leaf, module.conv)
        (folder / "channel_scales.json").write_text(json.dumps(scales))


class CharEncoder:
    """Characters -> ids (code point mod 255, 0 pads), cut at `max_length`, which it saves in the checkpoint."""

    def __init__(self, pre, *, files=None, tokenizer=None, max_length=None):
        saved = Path(files) / "chars.json" if files is not None else None
        if max_length is None and saved is not None and saved.is_file():
            max_length = json.loads(saved.read_text())["max_length"]
        self.max_length = max_length or pre.max_length

    def __call__(self, texts, augment=False, generator=None):
        ids = torch.zeros(len(texts), self.max_length, dtype=torch.long)
        for i, text in enumerate(texts):
            codes = [ord(c) % 255 + 1 for c in text[: self.max_length]]
            ids[i, : len(codes)] = torch.tensor(codes, dtype=torch.long)
        return {"input_ids": ids, "attention_mask": (ids > 0).long()}

    def save(self, folder):
        (folder / "chars.json").write_text(json.dumps({"max_length": self.max_length}))


class CharBag(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(256, 16)
        self.mix = nn.Linear(16, 16)

    def forward(self, input_ids, attention_mask):
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1)
        return torch.relu(self.mix(pooled))


class ThirdParty:
    @zoo_core.hookimpl
    def register_strategies(self, register):
        register(ChannelScale)

    @zoo_core.hookimpl
    def register_backbones(self, register):
        register(zoo_core.BackboneSpec(
            name="charbag", family="charbag", modality="text", feature_dim=16, build=CharBag,
            groups=lambda m: [("embed", m.embed), ("mix", m.mix)],
            preprocessing=TextPreprocessing(tokenizer="chars", max_length=64), encoder=CharEncoder))


@pytest.fixture
def third_party(fresh_catalog):
    register_plugin(ThirdParty(), name="third-party")
    yield
    unregister_plugin("third-party")


def base_checkpoint(tmp_path: Path) -> tuple[str, zoo_core.TransferModel]:
    torch.manual_seed(0)
    model = zoo_core.get_backbone("tinynet").create_model(2)
    zoo_core.write_checkpoint(tmp_path / "base", model, ["a", "b"])
    return f"file:{tmp_path / 'base'}", model


def test_a_third_party_strategy_prepares_exports_and_declares_its_relation(tmp_path, tiny_recipe, third_party):
    base, before = base_checkpoint(tmp_path)
    result = tiny_recipe.train(tmp_path, "channel-scale", base=base)
    out = result.checkpoint
    scales = json.loads((out / "channel_scales.json").read_text())
    assert sorted(scales) == ["0.0", "1.0"]  # both convs were wrapped by prepare() and trained
    assert ModelCard.load(out / "README.md").data.base_model_relation == "adapter"
    loaded = zoo_core.load(out)  # exported in the plain architecture: no wrapper, no scale
    assert set(loaded.model.state_dict()) == set(before.state_dict())
    for name, values in scales.items():
        conv, original = loaded.model.backbone.get_submodule(name), before.backbone.get_submodule(name)
        scale = torch.tensor(values)
        assert not torch.allclose(scale, torch.ones_like(scale))
        # the only change to the conv is its folded per-channel scale: nothing else in it trained
        assert torch.allclose(conv.weight, original.weight * scale.view(-1, 1, 1, 1), atol=1e-6)
    versions = yaml.safe_load((out / "recipe.yaml").read_text())["resolved"]["versions"]
    assert set(versions) == {"python", "transfer-zoo", "torch", "zoo-tinynet"}  # the plugins used, no others


def test_a_third_party_text_backbone_brings_its_own_encoder(tmp_path, tiny_recipe, third_party):
    files = {"train": str(EXAMPLES / "data/sst2_train_sample.tsv"), "test": str(EXAMPLES / "data/sst2_dev_sample.tsv")}
    data = {"reader": "csv", "args": {"files": files, "classes": ["negative", "positive"], "text": 1, "label": 0},
            "labels_per_class": 8, "limit": {"val": 8, "test": 16}, "max_length": 20, "image_size": None}
    result = tiny_recipe.train(tmp_path, "finetune", base="scratch:charbag", data=data)
    assert json.loads((result.checkpoint / "chars.json").read_text()) == {"max_length": 20}  # encoder.save
    loaded = zoo_core.load(result.checkpoint)
    texts = ["a fine, moving film", "dull and long"]
    predictions = loaded.predict(texts, top_k=2)
    assert [len(p) for p in predictions] == [2, 2]
    # prediction encodes as training did: the saved max_length, then the trained model
    encoded = CharEncoder(loaded.preprocessing, files=result.checkpoint)(texts)
    assert encoded["input_ids"].shape == (2, 20)
    with torch.no_grad():
        probs = loaded.model(encoded).softmax(1)
    assert predictions[0][0][1] == pytest.approx(float(probs[0].max()), abs=1e-6)
    versions = yaml.safe_load((result.checkpoint / "recipe.yaml").read_text())["resolved"]["versions"]
    assert "transformers" not in versions and "torchvision" not in versions
