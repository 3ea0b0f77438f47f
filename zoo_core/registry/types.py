"""The registry's vocabulary: who is asking, files of a version, and what a version looks like."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from zoo_core.errors import ZooError

if TYPE_CHECKING:  # an annotation only: the HTTP client needs these types without SQLAlchemy
    from zoo_core.registry.models import Model

MAX_PATH = 255
# `zoo gc` leaves blobs and uploads younger than this alone (seconds): long enough for any push to publish.
GC_GRACE = 3600.0


@dataclass
class FileSpec:
    """A file of a version about to be published: its path inside the version, and its verified blob."""

    path: str
    sha256: str
    size: int


@dataclass
class Viewer:
    """Who is asking: `admin` (embedded use, all visible) or the namespaces a token grants."""

    namespaces: frozenset[str] = frozenset()
    admin: bool = False
    name: str | None = None

    def can_read(self, model: Model, namespace: str) -> bool:
        return self.admin or model.visibility == "public" or namespace in self.namespaces

    def can_write(self, namespace: str) -> bool:
        return self.admin or namespace in self.namespaces


ADMIN = Viewer(admin=True, name="local")
ANONYMOUS = Viewer()


def check_path(path: str) -> str:
    """A file name inside a version: relative, no `..`, no control characters, no backslashes."""
    if not path or len(path) > MAX_PATH or any(ord(c) < 32 or ord(c) == 127 for c in path) or "\\" in path:
        raise ZooError(f"file name {path!r} is not allowed (empty, too long, or with control characters)")
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or path.startswith("/") or str(pure) != path:
        raise ZooError(f"file name {path!r} is not allowed: it must stay inside the version folder")
    return path


def manifest_commit(model_id: str, number: int, files: Iterable[FileSpec]) -> str:
    """A version's stable 40-hex commit id: sha1 of its model, number and file manifest."""
    lines = [f"{model_id}@{number}"] + sorted(f"{f.path}\t{f.sha256}\t{f.size}" for f in files)
    return hashlib.sha1("\n".join(lines).encode()).hexdigest()


def empty_commit(model_id: str) -> str:
    """The commit of a model's `main` before anything is published there (the Hub's empty repository)."""
    return manifest_commit(model_id, 0, [])


@dataclass
class VersionInfo:
    model_id: str
    number: int
    status: str
    commit: str
    created_at: str
    created_by: str | None
    backbone: str | None
    family: str | None
    strategy: str | None
    metrics: dict[str, float]
    aliases: list[str]
    files: list[dict[str, Any]] = field(default_factory=list)
    parents: list[dict[str, Any]] = field(default_factory=list)
    card: str | None = None
    status_reason: str | None = None
    size: int | None = None  # bytes, all files together
    card_complete: bool = True
    card_missing: list[str] = field(default_factory=list)  # what the card lacks (empty when complete)
    message: str | None = None  # the commit message it was published with (Hub clients), if any

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)
