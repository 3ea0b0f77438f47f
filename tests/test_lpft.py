"""LP-FT (`head_init: probe` on lora and finetune): the new head starts as the linear probe on the base's features,
its standardisation folded into the weights, and the run records how the head started."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import yaml

from zoo_core.probe import fit_probe, probe_head
from zoo_core.recipe import recipe_from_dict
from zoo_core.train import Engine


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_folded_head_gives_the_probes_logits_on_raw_features_and_ignores_a_dead_feature():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 12)
    x = torch.from_numpy(rng.normal(size=(36, 6)) * [1, 5, 0.1, 2, 1, 1] + [0, 3, -1, 0, 9, 0]).float()
    x[:, 3] += torch.from_numpy(labels * 8.0).float()  # one informative feature
    x[:, 5] = 4.0  # constant on the training set: read as 0 on new inputs, as the linear-probe head reads it
    weight, bias, info = probe_head(x, labels, 3, seed=0)
    assert info["C"] > 0 and info["folds"] == 5
    mean, std = x.mean(0), x.std(0)
    std[5] = float("inf")
    fit = fit_probe((x - mean) / std, labels, 3, seed=0)
    new = x + torch.from_numpy(rng.normal(size=x.shape)).float()
    expected = ((new - mean) / std).double() @ fit.weight.T + fit.bias
    assert torch.allclose(new @ weight.T + bias, expected.float(), atol=1e-4)
    assert bool((weight[:, 5] == 0).all())
    assert ((x @ weight.T + bias).argmax(1).numpy() == labels).mean() > 0.9


@pytest.mark.parametrize("strategy", ["lora", "finetune"])
def test_the_engine_starts_the_head_from_the_probe_and_records_it(tmp_path, tiny_recipe, strategy):
    recipe = tiny_recipe(tmp_path, {"name": strategy, "head_init": "probe"},
                         train={"epochs": 1, "batch_size": 8, "seed": 0}, data={"limit": {"val": 8, "test": 8}})
    engine = Engine(recipe_from_dict(copy.deepcopy(recipe)), progress=False)
    random_head = engine.model.head.linear.weight.detach().clone()
    info = engine._probe_head()
    features = engine.features(engine.data.train)
    weight, bias, _ = probe_head(features, engine.data.train.labels, len(engine.data.classes), seed=0)
    head = engine.model.head.linear
    assert torch.allclose(head.weight, weight) and torch.allclose(head.bias, bias)
    assert not torch.allclose(random_head, weight)
    assert info["rule"].startswith("linear probe")
    result = tiny_recipe.run(recipe)
    written = yaml.safe_load((result.checkpoint / "recipe.yaml").read_text())
    assert written["strategy"]["head_init"] == "probe"
    assert written["resolved"]["head_init"]["C"] == info["C"]
    assert "Head started as the linear probe on the base's features (LP-FT)" in \
        (result.checkpoint / "README.md").read_text()
    plain = tiny_recipe.run({**recipe, "strategy": {"name": strategy}, "output": str(tmp_path / "plain")})
    assert "head_init" not in yaml.safe_load((plain.checkpoint / "recipe.yaml").read_text())["resolved"]
