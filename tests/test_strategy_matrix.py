"""Every strategy runs on a ResNet, a VGG, an Inception, an AlexNet and a BERT backbone (tiny subsets,
randomly initialised bases through the `scratch:` source so no download is needed), and the checkpoint
loads and predicts."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

import zoo_core
from zoo_core.recipe import recipe_from_dict
from zoo_core.run import run_recipe

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
STRATEGIES = ["linear-probe", "freeze", "finetune", "gradual-unfreeze", "bitfit", "lora", "scratch"]
IMAGE_BACKBONES = {"resnet18": 32, "vgg11": 32, "inception_v3": 75, "alexnet": 64}
TEXT_BACKBONES = ["bert-tiny"]


def data_section(modality: str, size: int | None) -> dict:
    if modality == "text":
        files = {"train": str(EXAMPLES / "data/sst2_train_sample.tsv"),
                 "test": str(EXAMPLES / "data/sst2_dev_sample.tsv")}
        return {"reader": "csv", "args": {"files": files, "classes": ["negative", "positive"]},
                "labels_per_class": 4, "limit": {"val": 4, "test": 6}, "max_length": 24}
    return {"reader": "npz", "args": {"path": str(EXAMPLES / "data/pneumoniamnist_sample.npz")},
            "labels_per_class": 4, "image_size": size, "limit": {"val": 4, "test": 6}}


@pytest.mark.slow
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("backbone", [*IMAGE_BACKBONES, *TEXT_BACKBONES])
def test_strategy_on_backbone(strategy, backbone, tmp_path, tiny_tokenizer):
    spec = zoo_core.get_backbone(backbone)
    recipe = {
        "base": "scratch" if strategy == "scratch" else f"scratch:{backbone}",
        "backbone": backbone,
        "strategy": strategy,
        "data": data_section(spec.modality, IMAGE_BACKBONES.get(backbone)),
        "train": {"epochs": 2, "batch_size": 8, "lr": 0.001},
        "output": str(tmp_path / "ckpt"),
    }
    if spec.modality == "text":
        recipe["data"]["args"]["text"] = 1
        recipe["data"]["args"]["label"] = 0
        recipe["data"]["tokenizer"] = str(tiny_tokenizer)
    result = run_recipe(recipe_from_dict(copy.deepcopy(recipe)), progress=False, log=lambda m: None)
    assert set(result.metrics) >= {"accuracy", "macro_f1"}
    loaded = zoo_core.load(result.checkpoint)
    sample = ["a fine film", "dull"] if spec.modality == "text" else \
        zoo_core.get_reader("npz")(path=recipe["data"]["args"]["path"]).read().splits["test"].inputs[:2]
    assert len(loaded.predict(sample)) == 2
