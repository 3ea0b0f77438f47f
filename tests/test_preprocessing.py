"""Inputs are prepared as the weights were: resize the shorter side, then crop the centre (torchvision's
ImageClassification transforms); a recipe's `data.image_size` resizes whole images instead."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

import zoo_core
from zoo_core.backbone import ImagePreprocessing
from zoo_core.pipeline import ImageEncoder
from zoo_core.recipe import recipe_from_dict
from zoo_core.train import Engine

V2 = ImagePreprocessing(input_size=224, resize_size=232)  # torchvision's ResNet-50 IMAGENET1K_V2


def reference(image: np.ndarray, transforms) -> torch.Tensor:
    """torchvision.transforms.v2 on the same float image, normalised with the same mean/std."""
    x = torch.from_numpy(image).float().div(255).permute(2, 0, 1)
    x = transforms(x)
    return v2.Normalize(mean=list(V2.mean), std=list(V2.std))(x)


@pytest.mark.parametrize("shape", [(256, 300, 3), (300, 256, 3)])
def test_resize_shorter_side_then_center_crop_like_torchvision(shape):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    ours = ImageEncoder(V2)(image[None])[0]
    expected = reference(image, v2.Compose([v2.Resize(232, antialias=True), v2.CenterCrop(224)]))
    assert ours.shape == expected.shape == (3, 224, 224)
    assert torch.allclose(ours, expected, atol=1e-4), (ours - expected).abs().max()
    squashed = reference(image, v2.Resize((224, 224), antialias=True))  # what was done before: no crop
    assert not torch.allclose(ours, squashed, atol=1e-2)


def test_image_size_resizes_the_whole_image_without_crop():
    image = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    whole = ImagePreprocessing(input_size=32, resize_size=32, center_crop=False)
    ours = ImageEncoder(whole)(image[None])[0]
    assert torch.allclose(ours, reference(image, v2.Resize((32, 32), antialias=True)), atol=1e-4)


def test_image_files_of_different_sizes_are_each_prepared(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(2)
    files = []
    for i, shape in enumerate([(256, 300, 3), (240, 240, 3)]):
        array = rng.integers(0, 256, shape, dtype=np.uint8)
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(array).save(files[-1])
    batch = ImageEncoder(V2)(files)
    assert batch.shape == (2, 3, 224, 224)
    assert torch.allclose(batch[0], ImageEncoder(V2)([files[0]])[0])


def test_the_engine_uses_the_preprocessing_of_the_weights_it_loaded(tmp_path, tiny_recipe):
    model = zoo_core.get_backbone("tinynet").create_model(2)
    crop = ImagePreprocessing(input_size=24, resize_size=28, mean=(0.5,) * 3, std=(0.5,) * 3)
    zoo_core.write_checkpoint(tmp_path / "base", model, ["a", "b"], preprocessing=crop)
    recipe = tiny_recipe(tmp_path, "finetune", base=f"file:{tmp_path / 'base'}", train={"epochs": 1})
    recipe["data"]["image_size"] = None
    engine = Engine(recipe_from_dict(recipe), progress=False)
    assert engine.preprocessing == crop  # the base's, not tinynet's default
    assert engine.encode(engine.data.test, np.arange(2)).shape == (2, 3, 24, 24)
    out = tiny_recipe.run(recipe).checkpoint
    saved = json.loads((out / "config.json").read_text())["preprocessing"]
    assert (saved["input_size"], saved["resize_size"], saved["center_crop"]) == (24, 28, True)
    # a recipe's image_size still resizes whole images, and the checkpoint records it
    recipe["data"]["image_size"] = 32
    assert Engine(recipe_from_dict(recipe), progress=False).preprocessing == ImagePreprocessing(
        input_size=32, resize_size=32, mean=(0.5,) * 3, std=(0.5,) * 3, center_crop=False)


def test_checkpoints_from_before_center_crop_keep_resizing_whole_images(tmp_path):
    model = zoo_core.get_backbone("tinynet").create_model(2)
    out = zoo_core.write_checkpoint(tmp_path / "old", model, ["a", "b"])
    config = json.loads((out / "config.json").read_text())
    for key in ("center_crop", "interpolation"):
        del config["preprocessing"][key]
    (out / "config.json").write_text(json.dumps(config))
    assert zoo_core.load_checkpoint(out).preprocessing.center_crop is False
