"""The registry's hot reads in one or two queries: a version by alias, number or commit with its model in one
joined query, and what never changes once a version exists (its files, size, metrics, lineage edges: all fixed by
its commit, the sha1 of its file manifest) kept in a bounded in-process cache keyed by commit.

What may change (status, aliases, a model's visibility, whether a parent is visible to whoever asks) is always read
from the database; so several server processes over one database each keep their own cache safely.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.orm import defer
from sqlmodel import Session, select

from zoo_core.registry.cards import parse_card
from zoo_core.registry.models import Alias, FileEntry, LineageEdge, Model, Namespace, Version, VersionMetric
from zoo_core.registry.refs import ModelRef, revision_number
from zoo_core.registry.types import Viewer


@lru_cache(maxsize=1024)
def card_metadata(card: str) -> dict[str, Any]:
    """A card's metadata (its YAML front matter), parsed once per card text: a version's card never changes.
    Shared between callers: read it, never change it."""
    return parse_card(card)[0]


CACHE_SIZE = 4096  # versions; an entry is a few hundred bytes plus its file list
HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Fixed:
    """What a version's commit fixes: its files (by path), total size, metrics, and lineage edges."""

    files: tuple[dict[str, Any], ...]
    size: int
    metrics: dict[str, float]
    external_parents: tuple[dict[str, Any], ...]  # parents outside the registry: the same for every viewer
    internal_parents: bool  # a parent in the registry: shown per viewer (its model may be private)


class FixedCache:
    def __init__(self, size: int = CACHE_SIZE):
        self.size, self.entries, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, commit: str) -> Fixed | None:
        with self.lock:
            found = self.entries.get(commit)
            if found is not None:
                self.entries.move_to_end(commit)
            return found

    def put(self, commit: str, fixed: Fixed) -> None:
        with self.lock:
            self.entries[commit] = fixed
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)


# Statements are built once, with bound parameters: building one costs more than running it on SQLite.
# A version row leaves out the documents a version object does not need (the card stays: `resolve` returns it).
LIGHT = (defer(Version.card_data), defer(Version.config))
_VERSION_OF = (select(Version, Model.visibility).options(*LIGHT).join(Model, Version.model_id == Model.id)
               .join(Namespace, Model.namespace_id == Namespace.id)
               .where(Namespace.name == bindparam("ns"), Model.name == bindparam("name")))
BY_NUMBER = _VERSION_OF.where(Version.number == bindparam("number"))
BY_COMMIT = _VERSION_OF.where(Version.commit == bindparam("commit"))
BY_ALIAS = _VERSION_OF.join(Alias, Alias.version_id == Version.id).where(Alias.model_id == Model.id,
                                                                         Alias.name == bindparam("alias"))
ALL_VERSIONS = (select(Version, Model.visibility).options(defer(Version.card), *LIGHT)
                .join(Model, Version.model_id == Model.id).join(Namespace, Model.namespace_id == Namespace.id)
                .where(Namespace.name == bindparam("ns"), Model.name == bindparam("name")).order_by(Version.number))
MODEL = (select(Model, Namespace).join(Namespace, Model.namespace_id == Namespace.id)
         .where(Namespace.name == bindparam("ns"), Model.name == bindparam("name")))
ALIASES_OF_VERSION = select(Alias.name).where(Alias.version_id == bindparam("version"))
ALIASES_OF_MODEL = select(Alias.version_id, Alias.name).where(Alias.model_id == bindparam("model"))
IDS = bindparam("ids", expanding=True)
VERSIONS_OF_MODELS = (select(Version.id, Version.model_id, Version.number, Version.status, Version.commit)
                      .where(Version.model_id.in_(IDS)).order_by(Version.number))
ALIASES_OF_MODELS = select(Alias.version_id, Alias.name).where(Alias.model_id.in_(IDS))
FILES = (select(FileEntry.version_id, FileEntry.path, FileEntry.size, FileEntry.sha256)
         .where(FileEntry.version_id.in_(IDS)).order_by(FileEntry.path))
METRICS = select(VersionMetric.version_id, VersionMetric.name, VersionMetric.value).where(
    VersionMetric.version_id.in_(IDS))
EDGES = (select(LineageEdge.child_id, LineageEdge.parent_id, LineageEdge.parent_external, LineageEdge.relation)
         .where(LineageEdge.child_id.in_(IDS)).order_by(LineageEdge.id))


class ReadsMixin:
    """Hot-path helpers of `RegistryService` (which provides `engine` and the row helpers)."""

    _fixed_cache: FixedCache

    def _find_version(self, session: Session, ref: ModelRef, viewer: Viewer) -> Version | None:
        """The version `ref` names, with its model and namespace, in one query; None when there is none or the
        viewer may not read it (the caller then takes the step-by-step path, which says precisely what is
        missing and suggests names)."""
        revision = ref.revision or "latest"
        params = {"ns": ref.namespace, "name": ref.name}
        number = revision_number(revision)
        if number is not None:
            stmt, params["number"] = BY_NUMBER, number
        elif len(revision) == 40 and set(revision) <= HEX:
            stmt, params["commit"] = BY_COMMIT, revision
        else:
            stmt, params["alias"] = BY_ALIAS, revision
        row = session.exec(stmt, params=params).first()
        if row is None:
            return None
        version, visibility = row
        if not (viewer.admin or visibility == "public" or ref.namespace in viewer.namespaces):
            return None
        if not viewer.can_read_version(version.status, ref.namespace):
            return None
        return version

    def _version_aliases(self, session: Session, version_id: int) -> list[str]:
        return list(session.exec(ALIASES_OF_VERSION, params={"version": version_id}).all())

    def _fixed(self, session: Session, versions: list[Version]) -> dict[int, Fixed]:
        """The fixed parts of `versions` (by version id): from the cache, the missing ones in three queries."""
        cache = self.__dict__.get("_fixed_cache")
        if cache is None:
            cache = self._fixed_cache = FixedCache()
        out, missing = {}, []
        for v in versions:
            found = cache.get(v.commit)
            if found is None:
                missing.append(v)
            else:
                out[v.id] = found
        if not missing:
            return out
        ids = [v.id for v in missing]
        files: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
        for f in session.exec(FILES, params={"ids": ids}):
            files[f.version_id].append({"path": f.path, "size": f.size, "sha256": f.sha256})
        metrics: dict[int, dict[str, float]] = {i: {} for i in ids}
        for m in session.exec(METRICS, params={"ids": ids}):
            metrics[m.version_id][m.name] = m.value
        external: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
        internal: set[int] = set()
        for e in session.exec(EDGES, params={"ids": ids}):
            if e.parent_id is not None:
                internal.add(e.child_id)
            else:
                external[e.child_id].append({"ref": e.parent_external, "relation": e.relation})
        for v in missing:
            fixed = Fixed(tuple(files[v.id]), sum(f["size"] for f in files[v.id]), metrics[v.id],
                          tuple(external[v.id]), v.id in internal)
            out[v.id] = fixed
            if v.status != "draft":  # a draft's row is fixed too, but it is rare and cheap to read again
                cache.put(v.commit, fixed)
        return out

    def _model_versions(self, session: Session, ref: ModelRef, viewer: Viewer) -> list[Version] | None:
        """A model's versions (oldest first, without card text or documents) in one query; None when it has
        none or the viewer may not read it (the caller checks the model the step-by-step way)."""
        rows = session.exec(ALL_VERSIONS, params={"ns": ref.namespace, "name": ref.name}).all()
        if not rows:
            return None
        visibility = rows[0][1]
        if not (viewer.admin or visibility == "public" or ref.namespace in viewer.namespaces):
            return None
        return [v for v, _ in rows if viewer.can_read_version(v.status, ref.namespace)] or None

    def _model_aliases(self, session: Session, model_id: int) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for version_id, name in session.exec(ALIASES_OF_MODEL, params={"model": model_id}):
            out.setdefault(version_id, []).append(name)
        return out

