"""`strategy: auto` (zoo_core.auto): every candidate trained from the same seed, the best on validation kept, what
was written is the chosen run's concrete recipe, and it trains the same weights again alone."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

from zoo_core import defaults
from zoo_core.errors import ZooError
from zoo_core.recipe import recipe_from_dict
from zoo_core.train import Engine


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 100-step runs on batches of 8: more threads only wait on each other
    yield
    torch.set_num_threads(threads)


def auto_recipe(tiny_recipe, folder: Path, candidates=None, base: Path | None = None, **sections) -> dict:
    """The tiny recipe with `strategy: auto`, from tinynet trained on digits when `base` is given, on defaults
    but for a short run."""
    recipe = tiny_recipe(folder, "auto", **({"base": f"file:{base}"} if base else {}), **sections)
    recipe["data"]["limit"] = {"val": 32, "test": 40}
    recipe["train"] = {"seed": 0, "batch_size": 8, "min_steps": 30, **sections.get("train", {})}
    if candidates is not None:
        recipe["strategy"] = {"name": "auto", "candidates": candidates}
    return recipe


def test_auto_trains_the_default_candidates_and_writes_the_chosen_one_which_trains_the_same_again(
        tmp_path, tiny_recipe, tiny_digits_source):
    result = tiny_recipe.run(auto_recipe(tiny_recipe, tmp_path, base=tiny_digits_source))
    written = yaml.safe_load((result.checkpoint / "recipe.yaml").read_text())
    auto = written["resolved"]["auto"]
    expected = defaults.AUTO_CANDIDATES["image"]
    assert [c["strategy"]["name"] for c in auto["candidates"]] == [c["strategy"]["name"] for c in expected]
    assert auto["validation_size"] == 32
    chosen = auto["candidates"][auto["chosen"]]
    # the written recipe is the chosen candidate's, concrete: its strategy block and its data values
    assert written["strategy"] == chosen["strategy"]
    assert written["data"]["augment"] == bool(expected[auto["chosen"]].get("data", {}).get("augment"))
    # the choice is the best validation accuracy, ties to the lower loss, then the earlier candidate
    keys = [(c["validation"]["accuracy"], -c["validation"]["loss"]) for c in auto["candidates"]]
    assert auto["chosen"] == keys.index(max(keys))
    card = (result.checkpoint / "README.md").read_text()
    assert f"chosen by `auto`: candidate {auto['chosen'] + 1} of 2" in card
    assert "the test split was not consulted" in card
    # the chosen candidate alone, from the written recipe: the same weights (no state leaks between candidates)
    written.pop("resolved")
    written["output"] = str(tmp_path / "again")
    again = tiny_recipe.run(written)
    assert (again.checkpoint / "model.safetensors").read_bytes() == \
        (result.checkpoint / "model.safetensors").read_bytes()


def test_auto_keeps_the_candidate_best_on_validation_whatever_its_place(tmp_path, tiny_recipe, tiny_digits_source):
    # a finetune whose learning rate cannot move it from its random head, and a linear probe fitted to convergence
    stuck = {"strategy": "finetune", "train": {"lr": 1e-9, "epochs": 1, "min_steps": 0}}
    probe = {"strategy": {"name": "linear-probe"}}
    for order in ([stuck, probe], [probe, stuck]):
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        result = tiny_recipe.run(auto_recipe(tiny_recipe, folder, order, base=tiny_digits_source))
        auto = result.extra["auto"]
        names = [c["strategy"]["name"] for c in auto["candidates"]]
        assert names[auto["chosen"]] == "linear-probe", auto
        validation = [c["validation"]["accuracy"] for c in auto["candidates"]]
        assert validation[auto["chosen"]] > validation[1 - auto["chosen"]]
        assert auto["candidates"][names.index("finetune")]["candidate"]["train"] == stuck["train"]


def test_bad_auto_recipes_name_the_candidate_and_train_nothing(tmp_path, tiny_recipe):
    def refused(candidates, **sections) -> str:
        recipe = auto_recipe(tiny_recipe, tmp_path, candidates, **sections)
        with pytest.raises(ZooError) as error:
            tiny_recipe.run(recipe)
        assert not Path(recipe["output"]).exists()
        return str(error.value)

    assert "strategy.candidates[1].strategy: a candidate of 'auto' cannot be 'auto'" in \
        refused([{"strategy": "finetune"}, {"strategy": "auto"}])
    assert "strategy.candidates[0].head" in refused([{"strategy": "finetune", "head": {"dropout": 0.5}}])
    assert "candidates[1]" in refused([{"strategy": "finetune"}, {"strategy": "finetune", "data": {"augmnt": True}}])
    assert "strategy.candidates[0]: a candidate is a mapping" in refused(["finetune"])
    assert "validation split" in refused(None, data={"val": None})
    assert "no defaults in defaults version 1" in refused(None, defaults=1)
    with pytest.raises(ZooError, match="not one Engine"):
        Engine(recipe_from_dict(copy.deepcopy(auto_recipe(tiny_recipe, tmp_path))), progress=False)
