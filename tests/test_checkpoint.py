from __future__ import annotations

import json

import pytest
import torch

import zoo_core
from zoo_core.errors import WeightsError, ZooError


def test_roundtrip_keeps_weights_labels_and_preprocessing(tmp_path):
    model = zoo_core.get_backbone("tinynet").create_model(3, dropout=0.2)
    out = zoo_core.write_checkpoint(tmp_path / "ckpt", model, ["a", "b", "c"])
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["backbone"] == {"name": "tinynet", "family": "tinynet", "modality": "image",
                                  "plugin": "tinynet", "options": {}}
    loaded = zoo_core.load_checkpoint(out)
    assert loaded.labels == ["a", "b", "c"] and not loaded.model.training
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    assert torch.equal(model(x), loaded.model(x))
    assert loaded.preprocessing.input_size == 32


def test_file_source_gives_backbone_and_head(tmp_path):
    model = zoo_core.get_backbone("tinynet").create_model(2)
    zoo_core.write_checkpoint(tmp_path / "ckpt", model, ["x", "y"])
    weights = zoo_core.load_weights(f"file:{tmp_path / 'ckpt'}")
    assert weights.spec.name == "tinynet" and weights.metadata["labels"] == ["x", "y"]
    transferred = zoo_core.load_pretrained(f"file:{tmp_path / 'ckpt'}", num_classes=5)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(transferred.backbone.state_dict()[key], value)
    assert transferred.num_classes == 5


def test_interrupted_write_leaves_nothing(tmp_path):
    model = zoo_core.get_backbone("tinynet").create_model(2)

    def crash(folder):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        zoo_core.write_checkpoint(tmp_path / "ckpt", model, ["x", "y"], extra=crash)
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_and_wrong_label_count(tmp_path):
    model = zoo_core.get_backbone("tinynet").create_model(2)
    zoo_core.write_checkpoint(tmp_path / "ckpt", model, ["x", "y"])
    with pytest.raises(ZooError, match="already exists"):
        zoo_core.write_checkpoint(tmp_path / "ckpt", model, ["x", "y"])
    with pytest.raises(ZooError, match="3 label names for a head with 2 classes"):
        zoo_core.write_checkpoint(tmp_path / "other", model, ["x", "y", "z"])


def test_corrupt_weights_and_foreign_folders_are_refused(tmp_path):
    model = zoo_core.get_backbone("tinynet").create_model(2)
    out = zoo_core.write_checkpoint(tmp_path / "ckpt", model, ["x", "y"])
    data = (out / "model.safetensors").read_bytes()
    (out / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="cannot read"):
        zoo_core.load_checkpoint(out)
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ZooError, match="not a Transfer Zoo checkpoint"):
        zoo_core.load_checkpoint(tmp_path / "hf")


def test_loading_skips_the_random_initialisation_only_while_it_builds(tmp_path):
    """The model a checkpoint is loaded into is built without random draws (they would be overwritten); models
    built afterwards are random again, and a checkpoint lacking a tensor is still refused, not left uninitialised."""
    from safetensors.torch import load_file, save_file

    model = zoo_core.get_backbone("tinynet").create_model(2)
    out = zoo_core.write_checkpoint(tmp_path / "ckpt", model, ["x", "y"])
    torch.manual_seed(0)
    zoo_core.load_checkpoint(out)
    after_load = torch.rand(1)
    torch.manual_seed(0)
    assert torch.equal(torch.rand(1), after_load)  # no draw consumed: the initialisation was skipped
    first, second = (zoo_core.get_backbone("tinynet").create_model(2) for _ in range(2))
    assert not torch.equal(first.head.linear.weight, second.head.linear.weight)  # init is restored afterwards
    state = load_file(out / "model.safetensors")
    save_file({k: v for k, v in state.items() if k != "head.linear.weight"}, out / "model.safetensors")
    with pytest.raises(WeightsError, match="missing"):
        zoo_core.load_checkpoint(out)


def test_weight_reference_syntax_and_unknown_scheme():
    with pytest.raises(ZooError, match="SCHEME:REFERENCE"):
        zoo_core.load_weights("resnet50")
    with pytest.raises(zoo_core.UnknownNameError, match="unknown source 'torchvison'; did you mean torchvision"):
        zoo_core.load_weights("torchvison:resnet50")


def test_scratch_source_builds_random_weights():
    weights = zoo_core.load_weights("scratch:tinynet")
    assert weights.origin == "scratch:tinynet" and weights.spec.name == "tinynet"
