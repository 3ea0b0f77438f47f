"""The on-disk checkpoint: a folder a Hugging Face user would recognise.

    model.safetensors   backbone and head weights (never pickle)
    config.json         backbone (name, plugin, options), labels, preprocessing, head
    README.md           model card (written by the training run)
    recipe.yaml         the resolved recipe that produced it (written by the training run)

Folders are written aside and renamed into place at the end, so an interrupted write leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch.overrides import TorchFunctionMode

from zoo_core.backbone import Preprocessing, TransferModel, preprocessing_from_dict
from zoo_core.errors import WeightsError, ZooError

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model in eval mode, its labels and preprocessing, and its raw config."""

    model: TransferModel
    labels: list[str]
    preprocessing: Preprocessing
    config: dict[str, Any]
    path: Path
    _encoder: Any = field(default=None, repr=False)

    def predict(self, inputs, top_k: int = 1, batch_size: int = 32) -> list[list[tuple[str, float]]]:
        """Labels with probabilities for image files / uint8 arrays, or for texts, `top_k` per input."""
        import torch

        if self._encoder is None:  # the backbone's encoder, reading its files (a tokenizer's) from the folder
            self._encoder = self.model.spec.make_encoder(self.preprocessing, files=self.path)
        out = []
        with torch.no_grad():
            for start in range(0, len(inputs), batch_size):
                probs = self.model(self._encoder(inputs[start:start + batch_size])).softmax(1)
                values, indices = probs.topk(min(top_k, probs.shape[1]), dim=1)
                out += [[(self.labels[i], float(v)) for v, i in zip(vs, ix, strict=True)]
                        for vs, ix in zip(values.tolist(), indices.tolist(), strict=True)]
        return out


def write_checkpoint(path: str | Path, model: TransferModel, labels: list[str],
                     preprocessing: Preprocessing | None = None,
                     extra: Callable[[Path], None] | None = None, overwrite: bool = False,
                     export: Callable[[TransferModel, Path], None] | None = None) -> Path:
    """Write `model` as a checkpoint folder at `path`, atomically.

    `export(model, tmp_dir)` runs first, before the weights are taken (a strategy's `export`: LoRA writes its
    adapters and merges them); `extra(tmp_dir)` may add files (card, recipe, tokenizer) before the folder is
    moved into place.
    """
    path = Path(path).expanduser().resolve()
    if path.exists() and not overwrite:
        raise ZooError(f"output '{path}' already exists; choose another path or allow overwriting")
    if len(labels) != model.num_classes:
        raise ZooError(f"{len(labels)} label names for a head with {model.num_classes} classes")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        if export is not None:
            export(model, tmp)
        config, state = _config_and_state(model, labels, preprocessing)
        state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
        save_file(state, tmp / WEIGHTS_FILE, metadata={"format": "pt", "library": "transfer-zoo"})
        sort_metadata(tmp / WEIGHTS_FILE)
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=str) + "\n")
        if extra is not None:
            extra(tmp)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def sort_metadata(path: Path) -> None:
    """Put the safetensors header's `__metadata__` keys in sorted order, in place. safetensors writes them in its
    hash map's order, which changes from process to process: equal weights gave files with different sha256
    (found by `zoo reproduce`). The sorted object has the same length, so only those header bytes change."""
    with path.open("r+b") as handle:
        size = int.from_bytes(handle.read(8), "little")
        header = handle.read(size).decode()
        start = header.find('"__metadata__":')
        if start < 0:
            return
        start += len('"__metadata__":')
        metadata, end = json.JSONDecoder().raw_decode(header, start)
        canonical = json.dumps(dict(sorted(metadata.items())), separators=(",", ":"), ensure_ascii=False)
        if end - start == len(canonical) and header[start:end] != canonical:
            handle.seek(8 + len(header[:start].encode()))
            handle.write(canonical.encode())


def _config_and_state(model: TransferModel, labels: list[str], preprocessing: Preprocessing | None):
    from zoo_core.plugins import get_catalog

    spec = model.spec
    config = {
        "library_name": "transfer-zoo",
        "format_version": FORMAT_VERSION,
        "backbone": {"name": spec.name, "family": spec.family, "modality": spec.modality,
                     "plugin": _plugin_of(get_catalog(), spec.name), "options": dict(spec.options)},
        "num_classes": model.num_classes,
        "labels": list(labels),
        "dropout": float(model.head.dropout.p),
        "feature_groups": list(model.feature_groups),
        "standardize": model.head.standardize,
        "preprocessing": (preprocessing or spec.preprocessing).as_dict(),
    }
    state = model.state_dict()
    if spec.hub_export is not None:
        # Loadable by the Hugging Face library as is: its config.json (the zoo's under "transfer_zoo") and its
        # weight names; the head is folded into a plain linear classifier.
        hub_config, state = spec.hub_export(model, list(labels))
        config.update(weights_layout="hub", standardize=False)
        config = {**hub_config, "transfer_zoo": config}
    return config, state


def _plugin_of(catalog, name: str) -> str | None:
    try:
        return catalog.plugin_of("backbone", name)
    except KeyError:
        return None


def read_config(path: str | Path) -> dict[str, Any]:
    path = Path(path).expanduser()
    config_file = path / CONFIG_FILE
    if not config_file.is_file():
        raise ZooError(f"'{path}' is not a Transfer Zoo checkpoint: {CONFIG_FILE} is missing")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as exc:
        raise ZooError(f"'{config_file}' is not valid JSON: {exc}") from None
    config = config.get("transfer_zoo", config)  # checkpoints in a Hub library's layout nest the zoo's config
    if config.get("library_name") != "transfer-zoo":
        raise ZooError(f"'{path}' is not a Transfer Zoo checkpoint (its config.json has no "
                       "library_name: transfer-zoo)")
    return config


class SkipInitialisation(TorchFunctionMode):
    """While a model whose every tensor is about to be loaded is built, its random initialisation is skipped: a
    ResNet-18's, drawn only to be overwritten, was a third of `zoo rank`'s time a candidate on a busy machine.

    A torch function mode, not a patch of `torch.nn.init`'s functions: replacing those module attributes for a
    while also replaced them for good in any library first imported meanwhile that keeps references to them
    (transformers 5 copies them into `transformers.initialization` at import): once a BERT checkpoint had been the
    first thing loaded, every BERT built from random weights later in the process kept PyTorch's default
    initialisation instead of BERT's (word embeddings' std 1.0 instead of 0.02), and drew different random numbers,
    so a run's result depended on what the process had run before. The mode sees a call through whichever
    reference it was made, and is gone when the model is built."""

    SKIPPED_METHODS = frozenset({torch.Tensor.uniform_, torch.Tensor.normal_, torch.Tensor.random_,
                                 torch.Tensor.bernoulli_, torch.Tensor.exponential_, torch.Tensor.geometric_,
                                 torch.Tensor.log_normal_, torch.Tensor.cauchy_})

    def __init__(self):
        super().__init__()
        from torch.nn import init

        self.skipped = self.SKIPPED_METHODS | {
            function for name, function in vars(init).items()
            if name.endswith("_") and not name.startswith("_") and callable(function)}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.skipped:
            return args[0] if args else kwargs["tensor"]  # the tensor, left as allocated (init's keyword)
        return func(*args, **(kwargs or {}))


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a checkpoint folder; the model is returned in eval mode on the CPU."""
    from zoo_core.plugins import get_backbone

    path = Path(path).expanduser()
    config = read_config(path)
    backbone = config["backbone"]
    spec = get_backbone(backbone["name"]).for_options(backbone.get("options", {}))
    with SkipInitialisation():  # every tensor is overwritten below (a missing one is refused)
        model = spec.create_model(config["num_classes"], dropout=config.get("dropout", 0.0),
                                  feature_groups=config.get("feature_groups"),
                                  standardize=config.get("standardize", False))
    try:
        state = load_file(path / WEIGHTS_FILE)
    except (FileNotFoundError, SafetensorError, OSError) as exc:
        raise WeightsError(f"cannot read '{path / WEIGHTS_FILE}': {exc}") from None
    if config.get("weights_layout") == "hub":
        if spec.hub_import is None:
            raise WeightsError(f"'{path}' is in a Hub library's layout that backbone '{spec.name}' cannot read")
        state = spec.hub_import(state)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise WeightsError(f"'{path / WEIGHTS_FILE}' does not match backbone '{spec.name}': "
                           f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    model.eval()
    preprocessing = preprocessing_from_dict(config["preprocessing"])
    return Checkpoint(model, list(config["labels"]), preprocessing, config, path.resolve())


def load(reference: str | Path, registry: str | None = None) -> Checkpoint:
    """A trained model, ready to predict: a checkpoint folder (`zoo_core.load("runs/pneumonia")`) or a registry
    reference (`zoo_core.load("acme/pneumonia@production")`, `@3`, `@latest`), fetched into the registry's
    cache and checked by sha256."""
    path = Path(reference).expanduser()
    if path.is_dir() or isinstance(reference, Path) or str(reference).startswith((".", "/", "~")):
        return load_checkpoint(path)
    from zoo_core.client import open_registry

    return load_checkpoint(open_registry(registry).pull(str(reference)))
