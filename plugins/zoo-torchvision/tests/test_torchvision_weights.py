"""torchvision weights go through torchvision's own enums and hub cache; offline, the test puts a state dict
where that cache looks ($TORCH_HOME/hub/checkpoints) instead of patching the loader."""

from __future__ import annotations

import pathlib

import pytest
import torch
from torchvision.models import get_model, get_model_weights

import zoo_core
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
