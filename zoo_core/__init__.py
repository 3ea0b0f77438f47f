"""Transfer Zoo: pretrained backbones from plugins, transfer recipes, and a registry of checkpoints."""

__version__ = "0.1.0"

from zoo_core.backbone import (  # noqa: E402
    BackboneSpec,
    ImagePreprocessing,
    LayerGroup,
    TextPreprocessing,
    TransferModel,
)
from zoo_core.checkpoint import Checkpoint, load, load_checkpoint, write_checkpoint  # noqa: E402
from zoo_core.client import Registry  # noqa: E402
from zoo_core.data import DataSet, Reader, Split  # noqa: E402
from zoo_core.errors import (  # noqa: E402
    DataError,
    DuplicateNameError,
    UnknownNameError,
    WeightsError,
    ZooError,
)
from zoo_core.hookspecs import hookimpl  # noqa: E402
from zoo_core.plugins import (  # noqa: E402
    get_backbone,
    get_catalog,
    get_reader,
    get_source,
    get_strategy,
    list_backbones,
    list_strategies,
)
from zoo_core.sources import PretrainedWeights, WeightSource, load_pretrained, load_weights  # noqa: E402
from zoo_core.strategy import Strategy  # noqa: E402

__all__ = [
    "BackboneSpec", "Checkpoint", "DataError", "DataSet", "DuplicateNameError", "ImagePreprocessing",
    "LayerGroup", "PretrainedWeights", "Reader", "Registry", "Split", "Strategy", "TextPreprocessing", "TransferModel",
    "UnknownNameError", "WeightSource", "WeightsError", "ZooError", "get_backbone", "get_catalog",
    "get_reader", "get_source", "get_strategy", "hookimpl", "load", "list_backbones", "list_strategies",
    "load_checkpoint", "load_pretrained", "load_weights", "write_checkpoint",
]
