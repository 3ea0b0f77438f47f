from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

import zoo_core


def recipe_file(tmp_path: Path, tiny_recipe, strategy="linear-probe") -> Path:
    recipe = tiny_recipe(tmp_path, strategy, data={"limit": {"val": 8, "test": 16}}, train={"epochs": 2},
                         output="out")
    return tiny_recipe.write(recipe, tmp_path / "recipe.yaml")


def test_predict_image_files(tmp_path, zoo, tiny_recipe):
    zoo("train", str(recipe_file(tmp_path, tiny_recipe)), "-q", check=True)
    images = np.load(tiny_recipe.pneumonia)["test_images"][:3]
    files = []
    for i, image in enumerate(images):
        files.append(tmp_path / f"xray{i}.png")
        Image.fromarray(image).save(files[-1])
    result = zoo("predict", str(tmp_path / "out"), *map(str, files), "--json", check=True)
    rows = json.loads(result.stdout)
    assert [r["input"] for r in rows] == list(map(str, files))
    assert all(r["predictions"][0]["label"] in {"normal", "pneumonia"} for r in rows)
    # the CLI's predictions are the Python API's, on the same pixels
    expected = zoo_core.load(tmp_path / "out").predict(images)
    assert [r["predictions"][0]["label"] for r in rows] == [p[0][0] for p in expected]
    table = zoo("predict", str(tmp_path / "out"), str(files[0]), check=True)
    assert "xray0.png" in table.stdout
    missing = zoo("predict", str(tmp_path / "out"), str(tmp_path / "nope.png"))
    assert missing.returncode == 2 and "is not an image file" in missing.stderr


def test_features_export(tmp_path, zoo, tiny_recipe):
    out = tmp_path / "features.npz"
    zoo("features", str(recipe_file(tmp_path, tiny_recipe)), str(out), check=True)
    arrays = np.load(out)
    assert arrays["train_features"].shape == (16, 16)  # 8 labels a class x 2 classes, tinynet's 16 features
    assert arrays["test_labels"].shape == (16,) and list(arrays["classes"]) == ["normal", "pneumonia"]
