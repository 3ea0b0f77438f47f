"""The registry's vocabulary: who is asking, files of a version, and what a version looks like."""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from zoo_core.errors import ContentError, ZooError

if TYPE_CHECKING:  # an annotation only: the HTTP client needs these types without SQLAlchemy
    from zoo_core.registry.models import Model

MAX_PATH = 255
# what one version may hold: generous for a checkpoint (sharded weights, tokenizer, ONNX exports), bounded for a page
MAX_FILES = 10_000
MAX_DESCRIPTION = 10_000  # characters
MAX_TAGS, MAX_TAG = 100, 100  # tags a model, characters a tag
# `zoo gc` leaves blobs and uploads younger than this alone (seconds): long enough for any push to publish.
GC_GRACE = 3600.0
# An upload counts as the writer's for this long (seconds): its blob may be published by that writer, and `gc` keeps
# it however old, so that files uploaded long before their commit (Git LFS uploads, then the commit) survive.
UPLOAD_LEASE = 24 * 3600.0
RANKINGS_SHOWN = 20  # rankings listed with a version, newest first (rankings.py; lite.py reads them too)


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
    read_only: bool = False  # a read-only token reads its namespace's private models and writes nothing

    def can_read(self, model: Model, namespace: str) -> bool:
        return self.can_see(model.visibility, namespace)

    def can_see(self, visibility: str, namespace: str) -> bool:
        """`can_read` on plain columns (a model's visibility and namespace), for queries that build no rows."""
        return self.admin or visibility == "public" or namespace in self.namespaces

    def can_write(self, namespace: str) -> bool:
        return self.admin or (namespace in self.namespaces and not self.read_only)

    def sees_drafts(self, namespace: str) -> bool:
        """A draft (a version pushed unpublished) is its namespace's own: read by the namespace's tokens (read-only
        ones too, as for private models), not by anyone else, even of a public model."""
        return self.admin or namespace in self.namespaces

    def can_read_version(self, status: str, namespace: str) -> bool:
        return status != "draft" or self.sees_drafts(namespace)


ADMIN = Viewer(admin=True, name="local")
ANONYMOUS = Viewer()


def check_path(path: str) -> str:
    """A file name inside a version that every client can write and fetch back by URL: relative, no `..` or `.`
    parts, no empty parts; no control characters (C0 or C1), no invisible formatting characters (bidi overrides
    that show `exe.txt` for `txt.exe`, zero-width spaces), no backslash, `#` or `?` (a URL would cut the name there);
    and written in Unicode's composed compatibility form (NFKC), so look-alike spellings such as fullwidth letters
    or a decomposed accent cannot sit beside the plain name."""
    if not path or len(path) > MAX_PATH:
        raise ZooError(f"file name {path!r} is not allowed (empty or longer than {MAX_PATH} characters)")
    bad = next((c for c in path if unicodedata.category(c) in ("Cc", "Cf") or c in "\\#?"), None)
    if bad is not None:
        raise ZooError(f"file name {path!r} is not allowed: it holds {unicodedata.name(bad, 'a control character')} "
                       f"(U+{ord(bad):04X}); control and formatting characters, backslashes, '#' and '?' are refused")
    if unicodedata.normalize("NFKC", path) != path:
        raise ZooError(f"file name {path!r} is not allowed: write it as "
                       f"{unicodedata.normalize('NFKC', path)!r} (Unicode NFKC; look-alike spellings are refused)")
    parts = path.split("/")
    if path.startswith("/") or any(part in ("", ".", "..") for part in parts) or PurePosixPath(path).is_absolute():
        raise ZooError(f"file name {path!r} is not allowed: it must stay inside the version folder "
                       "(relative, no empty, '.' or '..' parts)")
    return path


def check_limits(files: int, description: str | None, tags: Any) -> None:
    """The caps on one version: its number of files, the model's description and tags (ContentError, 422)."""
    if files > MAX_FILES:
        raise ContentError(f"a version holds at most {MAX_FILES:,} files; this one has {files:,}")
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise ContentError(f"the description is {len(description):,} characters; at most {MAX_DESCRIPTION:,} "
                           "(the model card is the place for more)")
    if isinstance(tags, (list, tuple)):
        if len(tags) > MAX_TAGS:
            raise ContentError(f"{len(tags):,} tags; a model has at most {MAX_TAGS}")
        long = next((t for t in tags if len(str(t)) > MAX_TAG), None)
        if long is not None:
            raise ContentError(f"tag {str(long)[:40]!r}... is longer than {MAX_TAG} characters")


def check_tree(paths: Iterable[str]) -> None:
    """The files of one version form a folder every file system can hold: no file where another file's folder
    must be (`x` beside `x/y`), and no two names that differ only in case (one would overwrite the other on
    macOS and Windows)."""
    names = list(paths)
    folders = {"/".join(p.split("/")[:i]) for p in names for i in range(1, p.count("/") + 1)}
    clash = sorted(folders.intersection(names))
    if clash:
        raise ZooError(f"'{clash[0]}' is both a file and the folder of another file in this version")
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name.casefold(), name)
        if other != name:
            raise ZooError(f"'{other}' and '{name}' differ only in case: one would overwrite the other on "
                           "case-insensitive file systems")


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
    attestations: list[dict[str, Any]] = field(default_factory=list)  # reproductions (registry/attestations.py)
    rankings: list[dict[str, Any]] = field(default_factory=list)  # zoo rank --record, newest first (rankings.py)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)
