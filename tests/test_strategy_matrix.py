"""Every strategy runs on a ResNet, a VGG, an Inception, an AlexNet and a BERT backbone (tiny subsets,
randomly initialised bases through the `scratch:` source so no download is needed), and the checkpoint
loads and predicts."""

from __future__ import annotations

from pathlib import Path

import pytest

import zoo_core

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
STRATEGIES = ["linear-probe", "freeze", "finetune", "gradual-unfreeze", "bitfit", "lora", "scratch"]
IMAGE_BACKBONES = {"resnet18": 32, "vgg11": 32, "inception_v3": 75, "alexnet": 64}
TEXT_BACKBONES = ["bert-tiny"]


def text_data(tokenizer) -> dict:
    files = {"train": str(EXAMPLES / "data/sst2_train_sample.tsv"), "test": str(EXAMPLES / "data/sst2_dev_sample.tsv")}
    return {"reader": "csv", "args": {"files": files, "classes": ["negative", "positive"], "text": 1, "label": 0},
            "labels_per_class": 4, "limit": {"val": 4, "test": 6}, "max_length": 24, "tokenizer": str(tokenizer),
            "image_size": None}


@pytest.mark.slow
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("backbone", [*IMAGE_BACKBONES, *TEXT_BACKBONES])
def test_strategy_on_backbone(strategy, backbone, tmp_path, tiny_recipe, tiny_tokenizer):
    spec = zoo_core.get_backbone(backbone)
    if spec.modality == "text":
        data = text_data(tiny_tokenizer)
    else:
        data = {**tiny_recipe(tmp_path)["data"], "labels_per_class": 4, "image_size": IMAGE_BACKBONES[backbone],
                "limit": {"val": 4, "test": 6}}
    recipe = tiny_recipe(tmp_path, strategy, base="scratch" if strategy == "scratch" else f"scratch:{backbone}",
                         backbone=backbone, data=data, train={"lr": 0.001})
    result = tiny_recipe.run(recipe)
    assert set(result.metrics) >= {"accuracy", "macro_f1"}
    if strategy == "lora":  # adapters saved beside merged weights, which load without peft
        assert (result.checkpoint / "adapter_model.safetensors").is_file()
        assert (result.checkpoint / "adapter_config.json").is_file()
    loaded = zoo_core.load(result.checkpoint)
    assert not any("lora_" in key for key in loaded.model.state_dict())
    sample = ["a fine film", "dull"] if spec.modality == "text" else \
        zoo_core.get_reader("npz")(path=tiny_recipe.pneumonia).read().splits["test"].inputs[:2]
    assert len(loaded.predict(sample)) == 2
