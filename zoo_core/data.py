"""Data sets as the engine sees them, and the `Reader` interface that dataset plugins implement."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from zoo_core.errors import DataError


@dataclass
class Split:
    """One split: `inputs` are images (uint8 array N×H×W or N×H×W×C, or a list of image paths) or texts."""

    inputs: np.ndarray | list[str] | list[Path]
    labels: np.ndarray

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if len(self.inputs) != len(self.labels):
            raise DataError(f"{len(self.inputs)} inputs but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: Sequence[int] | np.ndarray) -> Split:
        indices = np.asarray(indices, dtype=np.int64)
        if isinstance(self.inputs, np.ndarray):
            return Split(self.inputs[indices], self.labels[indices])
        return Split([self.inputs[i] for i in indices], self.labels[indices])

    def fingerprint(self) -> str:
        """sha256 over the exact inputs and labels (file contents for image paths)."""
        digest = hashlib.sha256()
        if isinstance(self.inputs, np.ndarray):
            digest.update(str(self.inputs.shape).encode())
            digest.update(np.ascontiguousarray(self.inputs).tobytes())
        else:
            for item in self.inputs:
                data = Path(item).read_bytes() if isinstance(item, Path) else str(item).encode()
                digest.update(hashlib.sha256(data).digest())
        digest.update(self.labels.tobytes())
        return digest.hexdigest()


@dataclass
class DataSet:
    modality: Literal["image", "text"]
    classes: list[str]
    splits: dict[str, Split]

    def __post_init__(self) -> None:
        for name, split in self.splits.items():
            if len(split) and (split.labels.min() < 0 or split.labels.max() >= len(self.classes)):
                raise DataError(f"split '{name}' has labels outside 0..{len(self.classes) - 1} "
                                f"({len(self.classes)} classes: {', '.join(self.classes)})")


class Reader(BaseModel):
    """Base of dataset readers: its fields are the reader's arguments in a recipe's `data:` block."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: ClassVar[str]
    modality: ClassVar[Literal["image", "text"]]

    @classmethod
    def description(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0]

    def read(self) -> DataSet:
        raise NotImplementedError

    @classmethod
    def summary(cls, plugin: str | None = None) -> dict[str, Any]:
        props = cls.model_json_schema().get("properties", {})
        return {"name": cls.name, "plugin": plugin, "modality": cls.modality, "description": cls.description(),
                "arguments": sorted(props)}


def existing_file(path: str | Path, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{what} '{path}' does not exist or is not a file")
    return path


def encode_labels(raw: Sequence[Any], classes: list[str] | None) -> tuple[np.ndarray, list[str]]:
    """Map raw labels to 0..K-1: integer labels are class indices, other labels are class names."""
    values = [str(v).strip() for v in raw]
    if all(v.isdigit() for v in values):
        labels = np.array([int(v) for v in values], dtype=np.int64)
        return labels, classes or [str(i) for i in range(int(labels.max(initial=0)) + 1)]
    classes = classes or sorted(set(values))
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted(set(values) - set(index))
    if unknown:
        raise DataError(f"labels {unknown[:5]} are not among the classes {classes}")
    return np.array([index[v] for v in values], dtype=np.int64), classes
