"""Transfer Zoo: pretrained backbones from plugins, transfer recipes, and a registry of checkpoints.

The public names below are imported on first use (PEP 562, as huggingface_hub does), so `import zoo_core` is cheap
and the registry, the server and the registry commands never pay for torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> the module that defines it
_LAZY = {
    "BackboneSpec": "backbone", "ImagePreprocessing": "backbone", "LayerGroup": "backbone",
    "TextPreprocessing": "backbone", "TransferModel": "backbone", "Weights": "backbone", "Encoder": "backbone",
    "Checkpoint": "checkpoint", "load": "checkpoint", "load_checkpoint": "checkpoint",
    "write_checkpoint": "checkpoint",
    "Registry": "client", "open_registry": "client",
    "import_model": "importing",
    "DataSet": "data", "Reader": "data", "Split": "data",
    "DataError": "errors", "DuplicateNameError": "errors", "UnknownNameError": "errors", "WeightsError": "errors",
    "ZooError": "errors",
    "hookimpl": "hookspecs",
    "get_backbone": "plugins", "get_catalog": "plugins", "get_reader": "plugins", "get_source": "plugins",
    "get_strategy": "plugins", "list_backbones": "plugins", "list_strategies": "plugins",
    "Settings": "settings", "get_settings": "settings",
    "PretrainedWeights": "sources", "WeightSource": "sources", "load_pretrained": "sources",
    "load_weights": "sources",
    "Strategy": "strategy",
    "rank": "transferability",
}

__all__ = [  # the same names as _LAZY (a literal, so linters and type checkers read it)
    "BackboneSpec", "Checkpoint", "DataError", "DataSet", "DuplicateNameError", "Encoder", "ImagePreprocessing",
    "LayerGroup", "PretrainedWeights", "Reader", "Registry", "Settings", "Split", "Strategy", "TextPreprocessing",
    "TransferModel", "UnknownNameError", "WeightSource", "Weights", "WeightsError", "ZooError", "get_backbone",
    "get_catalog", "get_reader", "get_settings", "get_source", "get_strategy", "hookimpl", "import_model",
    "list_backbones", "list_strategies", "load", "load_checkpoint", "load_pretrained", "load_weights",
    "open_registry", "rank", "write_checkpoint",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":  # one version string: pyproject.toml's, as installed
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("transfer-zoo")
        except PackageNotFoundError:  # a source tree that was never installed
            value = "0+unknown"
        globals()[name] = value
        return value
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zoo_core' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"zoo_core.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # what type checkers and IDEs see; nothing of this runs
    from zoo_core.backbone import (
        BackboneSpec,
        Encoder,
        ImagePreprocessing,
        LayerGroup,
        TextPreprocessing,
        TransferModel,
        Weights,
    )
    from zoo_core.checkpoint import Checkpoint, load, load_checkpoint, write_checkpoint
    from zoo_core.client import Registry, open_registry
    from zoo_core.data import DataSet, Reader, Split
    from zoo_core.errors import DataError, DuplicateNameError, UnknownNameError, WeightsError, ZooError
    from zoo_core.hookspecs import hookimpl
    from zoo_core.importing import import_model
    from zoo_core.plugins import (
        get_backbone,
        get_catalog,
        get_reader,
        get_source,
        get_strategy,
        list_backbones,
        list_strategies,
    )
    from zoo_core.settings import Settings, get_settings
    from zoo_core.sources import PretrainedWeights, WeightSource, load_pretrained, load_weights
    from zoo_core.strategy import Strategy
    from zoo_core.transferability import rank
