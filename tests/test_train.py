"""The engine on tiny subsets: every strategy's effect on the weights, checkpoints, cards, chains."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import ModelCard

import zoo_core


def base_checkpoint(tmp_path: Path) -> tuple[str, dict[str, torch.Tensor]]:
    """A source checkpoint to transfer from (BatchNorm statistics non-trivial), and its backbone weights."""
    model = zoo_core.get_backbone("tinynet").create_model(3)
    with torch.no_grad():
        model.train()
        model(torch.randn(16, 3, 32, 32) * 3 + 1)  # move the running statistics away from their defaults
    zoo_core.write_checkpoint(tmp_path / "base", model, ["a", "b", "c"])
    return f"file:{tmp_path / 'base'}", {k: v.clone() for k, v in model.backbone.state_dict().items()}


def changed(before: dict[str, torch.Tensor], model) -> set[str]:
    after = model.backbone.state_dict()
    return {k for k, v in before.items() if not torch.equal(v, after[k])}


def test_linear_probe_keeps_the_backbone_and_writes_a_documented_checkpoint(tmp_path, tiny_recipe):
    base, before = base_checkpoint(tmp_path)
    result = tiny_recipe.train(tmp_path, "linear-probe", base=base)
    assert changed(before, result.model) == set()
    out = result.checkpoint
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "metrics.json",
                                                     "model.safetensors", "recipe.yaml"]
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "transfer-zoo" and card.data.license == "cc-by-4.0"
    assert card.data.base_model == base and card.data.base_model_relation == "finetune"
    assert card.data.datasets == ["pneumoniamnist"]
    for section in ("## Intended use", "## Training data", "## Training procedure", "## Evaluation",
                    "## Limitations"):
        assert section in card.text
    assert card.data.eval_results[0].metric_type == "accuracy"
    resolved = yaml.safe_load((out / "recipe.yaml").read_text())
    assert resolved["strategy"] == {"name": "linear-probe", "feature_groups": None, "standardize": True,
                                    "solver": "lbfgs", "C": None, "cv_folds": 5, "cv_score": "accuracy"}
    assert resolved["resolved"]["base"] == base
    assert len(resolved["resolved"]["data"]["train"]["sha256"]) == 64
    assert resolved["resolved"]["data"]["train"]["size"] == 16
    assert resolved["resolved"]["data"]["val"]["size"] == 16
    # the versions of what the run used: the core, torch, and tinynet's plugin (no torchvision, no transformers)
    assert set(resolved["resolved"]["versions"]) == {"python", "transfer-zoo", "torch", "zoo-tinynet"}
    assert set(result.metrics) == {"accuracy", "balanced_accuracy", "macro_f1", "auroc", "loss"}


def test_freeze_keeps_frozen_groups_and_their_batchnorm_statistics(tmp_path, tiny_recipe):
    base, before = base_checkpoint(tmp_path)
    result = tiny_recipe.train(tmp_path, {"name": "freeze", "trainable_from": "block2"}, base=base)
    moved = changed(before, result.model)
    assert moved and all(k.startswith("1.") for k in moved), moved  # block2 is module 1 of the Sequential
    assert "0.1.running_mean" not in moved  # BatchNorm of the frozen block1 stayed in eval mode


def test_bitfit_trains_only_biases_and_norms(tmp_path, tiny_recipe):
    base, before = base_checkpoint(tmp_path)
    result = tiny_recipe.train(tmp_path, "bitfit", base=base)
    moved = changed(before, result.model)
    assert "0.0.bias" in moved and "0.1.weight" in moved
    assert "0.0.weight" not in moved and "1.0.weight" not in moved


def test_gradual_unfreeze_trains_only_the_head_in_the_first_epoch(tmp_path, tiny_recipe):
    base, before = base_checkpoint(tmp_path)
    first = tiny_recipe.train(tmp_path, {"name": "gradual-unfreeze", "every": 1}, base=base, train={"epochs": 1})
    assert changed(before, first.model) == set()
    # without a validation split the last epoch is kept, so epoch 2's unfreezing shows
    second = tiny_recipe.train(tmp_path / "b", {"name": "gradual-unfreeze", "every": 1}, base=base,
                             train={"epochs": 2}, data={"val": None})
    assert {k.split(".")[0] for k in changed(before, second.model)} == {"1"}


def test_finetune_moves_every_group_and_scratch_ignores_the_base(tmp_path, tiny_recipe):
    base, before = base_checkpoint(tmp_path)
    fine = tiny_recipe.train(tmp_path / "f", {"name": "finetune", "layer_decay": 0.5}, base=base)
    assert {k.split(".")[0] for k in changed(before, fine.model)} == {"0", "1"}
    scratch = tiny_recipe.train(tmp_path / "s", "scratch", base="scratch", backbone="tinynet")
    assert "base_model" not in ModelCard.load(scratch.checkpoint / "README.md").data.to_dict()


def test_lora_saves_adapters_and_merges_them(tmp_path, tiny_recipe):
    pytest.importorskip("peft")
    base, before = base_checkpoint(tmp_path)
    result = tiny_recipe.train(tmp_path, {"name": "lora", "r": 2}, base=base)
    out = result.checkpoint
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    loaded = zoo_core.load(out)  # merged weights load without peft
    assert not any("lora_" in k for k in loaded.model.state_dict())
    moved = {k.split(".")[0] + "." + k.split(".")[1] for k in changed(before, loaded.model)}
    assert "1.0" in moved  # the second conv got a merged adapter
    assert ModelCard.load(out / "README.md").data.base_model_relation == "adapter"
    assert "peft" in yaml.safe_load((out / "recipe.yaml").read_text())["resolved"]["versions"]


def test_same_seed_same_result(tmp_path, tiny_recipe):
    recipe = tiny_recipe(tmp_path / "a", "finetune", train={"epochs": 1})
    first = tiny_recipe.run(recipe)
    again = tiny_recipe.run({**recipe, "output": str(tmp_path / "b")})
    assert first.metrics == again.metrics
    for key, value in first.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[key])


def test_chain_source_to_target_and_predict(tmp_path, tiny_recipe):
    source = tiny_recipe.train(tmp_path / "src", "scratch", base="scratch", backbone="tinynet")
    target = tiny_recipe.train(tmp_path / "tgt", "finetune", base=f"file:{source.checkpoint}")
    card = ModelCard.load(target.checkpoint / "README.md")
    assert card.data.base_model == f"file:{source.checkpoint}"
    loaded = zoo_core.load(target.checkpoint)
    data = zoo_core.get_reader("npz")(path=tiny_recipe.pneumonia, classes=["normal", "pneumonia"]).read()
    predictions = loaded.predict(data.splits["test"].inputs[:5], top_k=2)
    assert len(predictions) == 5 and {p[0][0] for p in predictions} <= {"normal", "pneumonia"}
    assert all(abs(sum(prob for _, prob in p) - 1) < 1e-5 for p in predictions)


def test_early_stopping_and_best_epoch(tmp_path, tiny_recipe):
    recipe = tiny_recipe(tmp_path, "finetune", train={"epochs": 8, "lr": 1e-9, "early_stopping": {"patience": 2},
                                                      "select_metric": "accuracy"})
    result = tiny_recipe.run(recipe)
    assert len(result.history) < 8 and result.best_epoch <= len(result.history)


def test_linear_probe_on_pooled_mid_level_groups_roundtrips(tmp_path, tiny_recipe):
    base, before = base_checkpoint(tmp_path)
    result = tiny_recipe.train(tmp_path, {"name": "linear-probe", "feature_groups": ["block1", "block2"]}, base=base)
    assert result.model.head.linear.in_features == 8 + 16  # the two blocks' channels, pooled and concatenated
    assert changed(before, result.model) == set()
    loaded = zoo_core.load(result.checkpoint)
    assert loaded.model.feature_groups == ("block1", "block2") and loaded.model.head.standardize
    x = torch.randn(3, 3, 32, 32)
    result.model.eval()
    assert torch.allclose(loaded.model(x), result.model(x), atol=1e-6)
    with pytest.raises(zoo_core.UnknownNameError, match="unknown layer group 'block3'"):
        tiny_recipe.train(tmp_path / "x", {"name": "linear-probe", "feature_groups": ["block3"]}, base=base)


def test_finetune_can_keep_the_base_norm_statistics(tmp_path, tiny_recipe):
    base, before = base_checkpoint(tmp_path)
    kept = tiny_recipe.train(tmp_path / "k", {"name": "finetune", "freeze_norm_stats": True}, base=base)
    moved = changed(before, kept.model)
    assert "0.0.weight" in moved and "0.1.weight" in moved  # convolutions and BatchNorm affine still train
    assert not any(k.endswith(("running_mean", "running_var")) for k in moved)
    default = tiny_recipe.train(tmp_path / "d", {"name": "finetune", "freeze_norm_stats": False}, base=base)
    assert any(k.endswith("running_mean") for k in changed(before, default.model))


def test_finetune_on_mid_level_groups_roundtrips(tmp_path, tiny_recipe):
    base, before = base_checkpoint(tmp_path)
    result = tiny_recipe.train(tmp_path, {"name": "finetune", "feature_groups": ["block1"]}, base=base)
    assert result.model.head.linear.in_features == 8  # block1's channels, pooled
    assert {k.split(".")[0] for k in changed(before, result.model)} == {"0"}  # block2 never reaches the head
    loaded = zoo_core.load(result.checkpoint)
    assert loaded.model.feature_groups == ("block1",) and not loaded.model.head.standardize
    x = torch.randn(3, 3, 32, 32)
    result.model.eval()
    assert torch.allclose(loaded.model(x), result.model(x), atol=1e-6)


def test_augmentation_flips_and_crops_7_8_to_all_of_the_side():
    from zoo_core.pipeline import _augment

    x = torch.arange(16 * 16, dtype=torch.float32).view(1, 1, 16, 16).expand(64, 3, 16, 16)
    out = _augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert torch.equal(out, _augment(x, torch.Generator().manual_seed(0)))  # seeded
    whole = [i for i in range(64) if torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))]
    assert 0 < len(whole) < 64  # some crops keep the whole image: training does not always zoom in
    assert any(torch.equal(out[i], x[i].flip(-1)) for i in whole) and any(torch.equal(out[i], x[i]) for i in whole)
