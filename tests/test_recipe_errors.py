"""Bad input: each a one-line error naming the problem, a non-zero exit, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

PNEUMONIA = str(Path(__file__).resolve().parents[1] / "examples" / "data" / "pneumoniamnist_sample.npz")


def write_recipe(tmp_path: Path, tiny_recipe, **changes) -> Path:
    """The shared tiny recipe (one epoch, 4 labels a class), with `section__field=value` changes."""
    recipe = tiny_recipe(tmp_path, "finetune", data={"labels_per_class": 4, "limit": {"val": 8, "test": 8}},
                         train={"epochs": 1})
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = recipe
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tiny_recipe.write(recipe, tmp_path / "recipe.yaml")


CASES = {
    "unknown strategy": ({"strategy": "fine-tune"}, "unknown strategy 'fine-tune'; did you mean finetune"),
    "unknown backbone": ({"base": "scratch", "backbone": "resnet05", "strategy": "scratch"},
                         "unknown backbone 'resnet05'; did you mean resnet50"),
    "unknown reader": ({"data__reader": "nzp"}, "unknown reader 'nzp'; did you mean npz"),
    "wrong class count": ({"head": {"num_classes": 3}}, "head.num_classes is 3 but the data has 2 classes"),
    "missing data file": ({"data__args": {"path": "/nonexistent/x.npz"}}, "npz file '/nonexistent/x.npz' does not"),
    "wrong type": ({"train__epochs": "many"}, "train.epochs: Input should be a valid integer"),
    "unknown field": ({"train__epoch": 3}, "train.epoch: Extra inputs are not permitted"),
    "bad strategy parameter": ({"strategy": {"name": "finetune", "layer_decay": 2}},
                               "strategy.layer_decay: Input should be less than or equal to 1"),
    "missing group": ({"strategy": {"name": "freeze", "trainable_from": "layer9"}},
                      "unknown layer group 'layer9'"),
    "too many labels": ({"data__labels_per_class": 5000}, "labels_per_class is 5000, but class 0 has only"),
    "bad reader argument": ({"data__args": {"path": PNEUMONIA, "imagez": "x"}}, "data.args.imagez: Extra inputs"),
    "scratch without backbone": ({"base": "scratch"}, "base 'scratch' needs a backbone name"),
    "bad base": ({"base": "resnet50"}, "must look like SCHEME:REFERENCE"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_recipe_is_one_line_nonzero_and_writes_nothing(case, tmp_path, zoo, tiny_recipe):
    changes, message = CASES[case]
    recipe = write_recipe(tmp_path, tiny_recipe, **changes)
    result = zoo("train", str(recipe), "-q")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.yaml"]


def test_corrupt_data_file(tmp_path, zoo, tiny_recipe):
    corrupt = tmp_path / "data.npz"
    corrupt.write_bytes(Path(tiny_recipe.pneumonia).read_bytes()[:5000])
    result = zoo("train", str(write_recipe(tmp_path, tiny_recipe, data__args={"path": str(corrupt)})), "-q")
    assert result.returncode == 2 and "is not a readable .npz file" in result.stderr
    assert not (tmp_path / "out").exists()


def test_existing_output_is_not_overwritten_without_asking(tmp_path, zoo, tiny_recipe):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    result = zoo("train", str(write_recipe(tmp_path, tiny_recipe)), "-q")
    assert result.returncode == 2 and "already exists" in result.stderr
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_set_overrides_and_output_flag(tmp_path, zoo, tiny_recipe):
    recipe = write_recipe(tmp_path, tiny_recipe)
    result = zoo("train", str(recipe), "--set", "train.epochs=2", "--set", "strategy.layer_decay=0.5",
                 "--output", str(tmp_path / "elsewhere"), "--json", check=True)
    resolved = yaml.safe_load((tmp_path / "elsewhere" / "recipe.yaml").read_text())
    assert resolved["train"]["epochs"] == 2 and resolved["strategy"]["layer_decay"] == 0.5
    assert '"checkpoint"' in result.stdout and not (tmp_path / "out").exists()
    bad = zoo("train", str(recipe), "--set", "train.epochs")
    assert bad.returncode == 2 and "--set expects FIELD=VALUE" in bad.stderr
