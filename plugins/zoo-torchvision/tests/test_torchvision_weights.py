"""torchvision weights go through torchvision's own enums and hub cache; offline, the test puts a state dict
where that cache looks ($TORCH_HOME/hub/checkpoints) instead of patching the loader."""

from __future__ import annotations

import pathlib

import pytest
import torch
from torchvision.models import get_model, get_model_weights

import zoo_core
from zoo_core.backbone import Head
from zoo_core.errors import UnknownNameError


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    return tmp_path


def cache_weights(torch_home, arch: str, tag: str, **kwargs) -> dict[str, torch.Tensor]:
    """Save a (randomly initialised) full torchvision state dict under the file name torchvision expects."""
    weights = get_model_weights(arch)[tag]
    torch.manual_seed(1)
    state = get_model(arch, weights=None, **kwargs).state_dict()
    target = torch_home / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, target)
    return state


def test_resnet_weights_load_through_torchvision_cache(torch_home):
    saved = cache_weights(torch_home, "resnet18", "IMAGENET1K_V1")
    weights = zoo_core.load_weights("torchvision:resnet18")  # DEFAULT resolves to the enum's default
    assert weights.origin == "torchvision:resnet18.IMAGENET1K_V1"
    assert "fc.weight" not in weights.state_dict
    assert weights.metadata["source_classes"] == 1000
    model = zoo_core.load_pretrained("torchvision:resnet18.IMAGENET1K_V1", num_classes=2)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, saved[key]), key
    assert model.num_classes == 2


@pytest.mark.parametrize(("arch", "kwargs"), [
    ("inception_v3", {"aux_logits": True, "init_weights": False}),
    ("googlenet", {"aux_logits": True, "init_weights": False}),
    ("vgg11_bn", {}),
    ("alexnet", {}),
])
def test_classifier_and_aux_heads_are_dropped(torch_home, arch, kwargs):
    tag = "IMAGENET1K_V1"
    saved = cache_weights(torch_home, arch, tag, **kwargs)
    model = zoo_core.load_pretrained(f"torchvision:{arch}.{tag}", num_classes=3)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, saved[key]), key
    side = 80 if arch == "inception_v3" else 64
    model.train()
    assert model(torch.randn(2, 3, side, side)).shape == (2, 3)
    # the ImageNet classifier is kept apart as the source head (zoo rank's LEEP and NCE read it): on the
    # backbone's features it gives torchvision's own logits
    source = zoo_core.load_weights(f"torchvision:{arch}.{tag}").head_state
    head = Head(source["linear.weight"].shape[1], 1000)
    head.load_state_dict(dict(source))
    # (the Inceptions as the zoo builds them for torchvision's weights; a fresh model: training moved BatchNorm's)
    full = get_model(arch, weights=None, **kwargs, **({"transform_input": True} if "aux_logits" in kwargs else {}))
    full.load_state_dict(saved)
    fresh = zoo_core.load_pretrained(f"torchvision:{arch}.{tag}", num_classes=3)
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        assert torch.allclose(head.eval()(fresh.eval().features(x)), full.eval()(x), atol=1e-5)


def test_unknown_tag_and_architecture(torch_home):
    with pytest.raises(UnknownNameError, match="unknown resnet50 weights tag 'IMAGENET1K_V3'; did you mean"):
        zoo_core.load_weights("torchvision:resnet50.IMAGENET1K_V3")
    with pytest.raises(UnknownNameError, match="did you mean resnet50"):
        zoo_core.load_weights("torchvision:resnet05")


class Payload:
    """Unpickling this would run code: it creates the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_weights_are_read_without_pickle_code_execution(torch_home):
    """A cached file carrying a pickled object (not tensors) is refused; its code never runs."""
    weights = get_model_weights("resnet18")["IMAGENET1K_V1"]
    target = torch_home / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    target.parent.mkdir(parents=True, exist_ok=True)
    marker = torch_home / "pwned"
    torch.save({"conv1.weight": Payload(marker)}, target)
    with pytest.raises(zoo_core.WeightsError, match="weights are never unpickled"):
        zoo_core.load_weights("torchvision:resnet18.IMAGENET1K_V1")
    assert not marker.exists()


def test_each_tag_is_described_with_its_own_preprocessing():
    resnet50 = {w.tag: w for w in zoo_core.get_backbone("resnet50").weights}
    v1, v2 = resnet50["IMAGENET1K_V1"], resnet50["IMAGENET1K_V2"]
    assert (v2.preprocessing.resize_size, v2.preprocessing.input_size) == (232, 224) and v2.default
    assert (v1.preprocessing.resize_size, v1.preprocessing.input_size) == (256, 224) and not v1.default
    assert v2.preprocessing.center_crop and v2.preprocessing.interpolation == "bilinear"
    assert v2.metrics["ImageNet-1K"]["acc@1"] == 80.858 and v2.dataset == "ImageNet-1K" and v2.num_classes == 1000
    assert v2.reference == "torchvision:resnet50.IMAGENET1K_V2" and v2.recipe.startswith("https://")
    inception = zoo_core.get_backbone("inception_v3").weights[0].preprocessing
    assert (inception.resize_size, inception.input_size) == (342, 299)


def test_training_prepares_images_as_the_loaded_weights_were(torch_home, tmp_path):
    from zoo_core.recipe import recipe_from_dict
    from zoo_core.train import Engine

    cache_weights(torch_home, "resnet18", "IMAGENET1K_V1")
    weights = zoo_core.load_weights("torchvision:resnet18.IMAGENET1K_V1")
    assert (weights.preprocessing.resize_size, weights.preprocessing.input_size) == (256, 224)
    data = pathlib.Path(__file__).resolve().parents[3] / "examples" / "data" / "pneumoniamnist_sample.npz"
    recipe = {"base": "torchvision:resnet18.IMAGENET1K_V1", "strategy": "linear-probe",
              "data": {"reader": "npz", "args": {"path": str(data)}, "labels_per_class": 2,
                       "limit": {"val": 2, "test": 2}}}
    engine = Engine(recipe_from_dict(recipe), progress=False)
    assert engine.preprocessing == weights.preprocessing
    assert engine.encode(engine.data.test, [0, 1]).shape == (2, 3, 224, 224)
