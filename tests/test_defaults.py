"""Per-strategy defaults (zoo_core.defaults): `strategy: {name: X}` alone trains enough steps to learn, recipe.yaml
records every value a default supplied, and a recipe written before defaults had versions trains as it did."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from zoo_core import defaults
from zoo_core.plugins import get_strategy
from zoo_core.recipe import recipe_from_dict
from zoo_core.train import Engine


def bare(tiny_recipe, tmp_path, strategy="finetune", **sections) -> dict:
    """The tiny recipe with nothing in its train section but the seed and batch size: defaults only."""
    recipe = tiny_recipe(tmp_path, strategy, **sections)
    recipe["train"] = {"seed": 0, "batch_size": 8, **sections.get("train", {})}
    return recipe


def engine_for(recipe: dict) -> Engine:
    return Engine(recipe_from_dict(copy.deepcopy(recipe)), progress=False)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These tests train for 100 steps on batches of 8: on a busy 2-core machine torch's default two threads
    spent 20x the CPU time of one (18.6 s against 0.8 s for the default finetune), waiting on each other."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def source(tiny_digits_source):
    return tiny_digits_source


def test_a_default_finetune_on_few_images_trains_enough_steps_and_predicts_both_classes(tmp_path, tiny_recipe,
                                                                                        source):
    recipe = bare(tiny_recipe, tmp_path, base=f"file:{source}", data={"limit": {"val": 8, "test": 60}})
    result = tiny_recipe.run(recipe)
    table = defaults.train_table(get_strategy("finetune"), "image")
    steps = len(result.history) * int(np.ceil(16 / 8))  # 8 labels a class, batches of 8
    assert steps >= table["min_steps"]  # 5 epochs of 2 steps were 10 steps: the collapse of issue 14
    resolved = yaml.safe_load((result.checkpoint / "recipe.yaml").read_text())
    assert resolved["train"]["epochs"] == len(result.history)
    # not one constant prediction: both classes are predicted and each is found more often than chance
    f1 = resolved["resolved"]["test_per_class_f1"]
    assert min(f1.values()) > 0.3, f1
    assert result.metrics["balanced_accuracy"] > 0.6


def test_the_resolved_recipe_holds_every_default_and_trains_the_same_way_again(tmp_path, tiny_recipe):
    recipe = bare(tiny_recipe, tmp_path, train={"min_steps": 6})  # a short run; the rest from defaults
    first = tiny_recipe.run(recipe)
    written = yaml.safe_load((first.checkpoint / "recipe.yaml").read_text())
    assert written["defaults"] == defaults.CURRENT
    train = written["train"]
    for field in ("epochs", "lr", "schedule", "min_steps", "warmup_epochs"):
        assert train[field] is not None, field
    used = written["resolved"]["defaults_used"]
    assert {"train.lr", "train.schedule", "train.warmup_epochs", "strategy.freeze_norm_stats"} <= set(used)
    assert "train.min_steps" not in used  # the recipe set it
    assert written["strategy"]["freeze_norm_stats"] == used["strategy.freeze_norm_stats"]
    # the written recipe, run as it is (no default left to resolve), gives the same weights
    written.pop("resolved")
    written["output"] = str(tmp_path / "again")
    again = tiny_recipe.run(written)
    assert (again.checkpoint / "model.safetensors").read_bytes() == \
        (first.checkpoint / "model.safetensors").read_bytes()
    assert yaml.safe_load((again.checkpoint / "recipe.yaml").read_text())["resolved"]["defaults_used"] == {}


def test_a_recipe_without_a_version_written_before_versions_resolves_the_old_way(tmp_path, tiny_recipe):
    old = engine_for({**bare(tiny_recipe, tmp_path), "defaults": 1}).recipe
    assert (old.train.epochs, old.train.lr, old.train.schedule, old.train.min_steps) == (5, 1e-3, "cosine", 0)
    assert old.train.warmup_epochs == 1.0  # finetune's own warm-up, as before
    strategy = engine_for({**bare(tiny_recipe, tmp_path), "defaults": 1}).strategy
    assert (strategy.backbone_lr_scale, strategy.freeze_norm_stats) == (0.1, False)
    new = engine_for(bare(tiny_recipe, tmp_path))
    assert new.recipe.defaults == defaults.CURRENT and new.recipe.train.min_steps > 0
    assert new.recipe.train.epochs * 2 >= new.recipe.train.min_steps


def test_a_version_2_recipe_keeps_the_probe_rule_it_was_written_with(tmp_path, tiny_recipe):
    """Version 3 chose the linear probe's C by held-out accuracy; a recipe.yaml of version 2 (which records no
    cv_score: the parameter came later) still gets the log-loss rule it ran with, and says so."""
    probe = bare(tiny_recipe, tmp_path, strategy="linear-probe")
    assert engine_for(probe).strategy.cv_score == "accuracy"
    assert engine_for({**probe, "defaults": 2}).strategy.cv_score == "log_loss"
    assert engine_for({**probe, "defaults": 1}).strategy.cv_score == "log_loss"  # the field default
    written = engine_for({**probe, "defaults": 2})
    assert written.defaults_used["strategy.cv_score"] == "log_loss" and written.recipe.defaults == 2
    # the finetune's version-2 recommendations are untouched by version 3
    assert engine_for({**bare(tiny_recipe, tmp_path), "defaults": 2}).strategy.backbone_lr_scale == 0.5


def test_explicit_epochs_are_kept_and_an_unknown_version_is_refused(tmp_path, tiny_recipe):
    from zoo_core.errors import ZooError

    kept = engine_for(bare(tiny_recipe, tmp_path, train={"epochs": 3})).recipe.train
    assert (kept.epochs, kept.min_steps) == (3, 0)
    with pytest.raises(ZooError, match="defaults: version 9 is unknown"):
        engine_for({**bare(tiny_recipe, tmp_path), "defaults": 9})


def test_target_norm_statistics_are_the_training_splits_own(tmp_path, tiny_recipe):
    import torch

    engine = engine_for(bare(tiny_recipe, tmp_path, strategy={"name": "finetune", "target_norm_stats": True}))
    assert engine.strategy.recomputes_norm_statistics()
    engine._target_norm_statistics()
    conv, norm = engine.model.backbone[0][0], engine.model.backbone[0][1]
    with torch.no_grad():
        out = conv(engine.encode(engine.data.train, np.arange(len(engine.data.train))))
    assert torch.allclose(norm.running_mean, out.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(norm.running_var, out.var((0, 2, 3)), rtol=1e-3)
    assert norm.momentum == 0.1  # the module's own momentum is given back


def _norm_statistics(checkpoint: Path) -> dict:
    from safetensors.torch import load_file

    return {k: v for k, v in load_file(checkpoint / "model.safetensors").items() if k.endswith("running_mean")}


def test_bitfit_and_lora_keep_the_bases_batchnorm_statistics_on_images_from_version_3(tmp_path, tiny_recipe, source):
    # defaults 3: as finetune, they normalise with the base's statistics (recipe.yaml records it); a version-2
    # recipe still lets them follow the target's batches, as it did
    base = _norm_statistics(source)
    assert base
    for strategy, version, kept in (("bitfit", None, True), ("lora", None, True), ("bitfit", 2, False)):
        recipe = bare(tiny_recipe, tmp_path / f"{strategy}-{version}", strategy=strategy, base=f"file:{source}",
                      train={"epochs": 1}, data={"limit": {"val": 8, "test": 8}})
        if version:
            recipe["defaults"] = version
        result = tiny_recipe.run(recipe)
        written = yaml.safe_load((result.checkpoint / "recipe.yaml").read_text())
        assert written["strategy"]["freeze_norm_stats"] is kept, (strategy, version)
        trained = _norm_statistics(result.checkpoint)
        assert base.keys() == trained.keys()
        assert all(bool((base[k] == trained[k]).all()) for k in base) is kept, (strategy, version)
