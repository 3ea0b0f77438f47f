"""What makes two training runs of one recipe give the same bits, pinned by the engine and recorded in recipe.yaml.

On a CPU, a run is a function of: the recipe (with every default resolved), the base weights, the exact data, the
seed (initialisation, data order, augmentation, splits), the number of intra-op threads (oneDNN and MKL split
reductions by thread: 1 and 2 threads give different weights), the kernels torch picks (its CPU capability:
AVX2, AVX512, ...; its math backend) and the package versions. `pin` fixes what can be fixed and `record` writes
all of it down, so `zoo reproduce` (zoo_core/reproduce.py) can run the same again and say why when it cannot.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from zoo_core.registry.files import file_sha256

# how each source of randomness is seeded: the engine's one torch.Generator (seeded by train.seed) draws the data
# order and every augmentation; numpy's seeded generators carve and sample the splits (zoo_core.pipeline)
RANDOMNESS = {
    "initialisation": "torch.manual_seed(train.seed) before the head is built",
    "data_order": "torch.randperm with the engine's torch.Generator seeded by train.seed, one permutation an epoch",
    "augmentation": "the same torch.Generator (flips and crops), in batch order",
    "splits": "numpy default_rng: labels_per_class seed, val carving seed + 1, limit seed + 2",
    "dropout": "torch's global generator, seeded by train.seed",
}


def pin(device: torch.device) -> dict[str, Any]:
    """Make this process deterministic where torch can be (call after the seeds and thread count are set) and
    return the settings in force. cuBLAS needs its workspace configured before its first use on a GPU."""
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return settings()


def settings() -> dict[str, Any]:
    return {
        "num_threads": torch.get_num_threads(),
        "num_interop_threads": torch.get_num_interop_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "mkldnn": torch.backends.mkldnn.enabled,
        "randomness": dict(RANDOMNESS),
    }


def environment(device: torch.device) -> dict[str, Any]:
    """Where a run happened, as far as it changes the numbers: device, CPU capability and math backend."""
    config = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=(\w+)", config)
    env = {
        "device": device.type,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "math_backend": {"blas": blas.group(1) if blas else None, "mkl": torch.backends.mkl.is_available(),
                         "mkldnn": torch.backends.mkldnn.is_available(),
                         "openmp": torch.backends.openmp.is_available()},
        "machine": platform.machine(),
        "system": platform.system(),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    return env


def folder_sha256(path: Path) -> str:
    """One digest over a folder's files: their relative paths and contents, in sorted order."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}\t{file_sha256(file)}\n".encode())
    return digest.hexdigest()


def data_files(args: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The files and folders a reader's arguments name, each with its sha256, keyed by the argument's dotted path
    (`path`, `files.train`, `splits.test.images`): how `zoo reproduce` finds the data again, wherever it moved."""
    found = {}
    for key, value in string_values(args):
        path = Path(value).expanduser()
        if path.is_file():
            found[key] = {"path": str(path), "name": path.name, "size": path.stat().st_size,
                          "sha256": file_sha256(path)}
        elif path.is_dir():
            found[key] = {"path": str(path), "name": path.name, "folder": True, "sha256": folder_sha256(path)}
    return found


def string_values(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every string inside nested dicts and lists, with its dotted path: ("files.train", "data/train.tsv")."""
    if isinstance(value, str):
        yield prefix, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from string_values(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from string_values(item, f"{prefix}.{index}")


def reader_arguments(recipe) -> dict[str, Any]:
    """The reader's arguments with its defaults filled in (a reader's default may change in a later release)."""
    from zoo_core.plugins import get_reader

    return get_reader(recipe.data.reader)(**recipe.data.args).model_dump(mode="json")


def base_sha256(files: Path | None) -> str | None:
    """sha256 of a zoo base's model.safetensors (the exact parent weights); None for other sources."""
    weights = files / "model.safetensors" if files is not None else None
    return file_sha256(weights) if weights is not None and weights.is_file() else None


@contextmanager
def nondeterminism_log() -> Iterator[list[str]]:
    """Collect the operations torch reports as having no deterministic implementation (it warns, as
    `use_deterministic_algorithms(warn_only=True)` asks): the card names them."""
    found: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield found
    shown = set()
    for warning in caught:
        text = str(warning.message)
        if "does not have a deterministic implementation" in text:
            found.append(text.split(", but you set")[0])
        elif (text, warning.category, warning.filename, warning.lineno) not in shown:  # not ours: shown, once
            shown.add((text, warning.category, warning.filename, warning.lineno))
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    found[:] = sorted(set(found))


def record(recipe, engine, nondeterministic: list[str]) -> dict[str, Any]:
    """The `resolved` entries of recipe.yaml that make a run reproducible: the defaults the engine resolved, the
    determinism settings, the environment, the data files and the base weights' digest."""
    nondeterministic = list(nondeterministic)
    if engine.device.type != "cpu":
        nondeterministic.append(f"{engine.device.type}: kernels may differ between GPU models and driver versions")
    warmup = recipe.train.warmup_epochs
    return {
        "defaults": {
            "train.warmup_epochs": warmup if warmup is not None else engine.strategy.default_warmup_epochs(),
            "train.device": engine.device.type,
            "train.num_threads": torch.get_num_threads(),
            "data.args": reader_arguments(recipe),
            "preprocessing": engine.preprocessing.as_dict(),
        },
        "determinism": {"seed": recipe.train.seed, **engine.determinism},
        "environment": environment(engine.device),
        "nondeterministic": nondeterministic,
        "data_files": data_files(recipe.data.args),
        "base_sha256": base_sha256(engine.weights.files if engine.weights is not None else None),
    }
