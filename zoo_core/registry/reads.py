"""The registry's hot reads in one or two queries: a version by alias, number or commit with its model in one
joined query, and what never changes once a version exists (its files, size, metrics, lineage edges: all fixed by
its commit, the sha1 of its file manifest) kept in a bounded in-process cache keyed by commit.

What may change (status, aliases, a model's visibility, whether a parent is visible to whoever asks) is always read
from the database; so several server processes over one database each keep their own cache safely.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Row, bindparam, exists, func, literal_column
from sqlalchemy import select as core_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from zoo_core.registry.cards import parse_card
from zoo_core.registry.models import (
    Alias,
    Attestation,
    FileEntry,
    LineageEdge,
    Model,
    Namespace,
    RankScore,
    Version,
    VersionMetric,
)
from zoo_core.registry.refs import ModelRef, revision_key
from zoo_core.registry.types import Viewer


@lru_cache(maxsize=1024)
def card_metadata(card: str) -> dict[str, Any]:
    """A card's metadata (its YAML front matter), parsed once per card text: a version's card never changes.
    Shared between callers: read it, never change it."""
    return parse_card(card)[0]


CACHE_SIZE = 4096  # versions; an entry is a few hundred bytes plus its file list


@dataclass(frozen=True)
class Fixed:
    """What a version's commit fixes: its files (by path), total size, metrics, and lineage edges."""

    files: tuple[dict[str, Any], ...]
    size: int
    metrics: dict[str, float]
    external_parents: tuple[dict[str, Any], ...]  # parents outside the registry: the same for every viewer
    internal_parents: bool  # a parent in the registry: shown per viewer (its model may be private)


class FixedCache:
    """A bounded, thread-safe LRU map (of commits to their Fixed parts, and elsewhere of other immutable facts)."""

    def __init__(self, size: int = CACHE_SIZE):
        self.size, self.entries, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, commit: Any) -> Any:
        with self.lock:
            found = self.entries.get(commit)
            if found is not None:
                self.entries.move_to_end(commit)
            return found

    def put(self, commit: Any, fixed: Any) -> None:
        with self.lock:
            self.entries[commit] = fixed
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)


# Statements are built once, with bound parameters: building one costs more than running it on SQLite. They select
# plain columns of the tables (SQLAlchemy Core), never ORM objects: a row is read as it comes, with no identity map,
# no instance state and no ORM compilation (in a profile of the alias lookup, the ORM was most of its time).
VT, MT, NT, AT = Version.__table__, Model.__table__, Namespace.__table__, Alias.__table__
V, M, NS, A = VT.c, MT.c, NT.c, AT.c
# what a version answer shows, without the documents it does not need (card_data, config)
VERSION_COLUMNS = (V.id, V.model_id, V.number, V.status, V.commit, V.created_at, V.created_by, V.backbone, V.family,
                   V.strategy, V.status_reason, V.card_complete, V.card_missing, V.message)
# a version's aliases, and whether anyone attested or ranked it, in the same row: the common case (none) then costs
# no further query. Alias names hold no comma (refs.ALIAS).
# (the separator as SQL text: given as a string, SQLAlchemy renders it into every execution's statement anew)
_ALIASES = (core_select(func.aggregate_strings(A.name, literal_column("','"))).where(A.version_id == V.id)
            .correlate(VT).scalar_subquery())
_ATTESTED = exists().where(Attestation.__table__.c.version_id == V.id)
_RANKED = exists().where(RankScore.__table__.c.version_id == V.id)
_VERSION_OF = (core_select(*VERSION_COLUMNS, V.card, M.visibility, _ALIASES.label("aliases"),
                           _ATTESTED.label("attested"), _RANKED.label("ranked"))
               .select_from(VT.join(MT, V.model_id == M.id).join(NT, M.namespace_id == NS.id))
               .where(NS.name == bindparam("ns"), M.name == bindparam("name")))
BY_NUMBER = _VERSION_OF.where(V.number == bindparam("number"))
BY_COMMIT = _VERSION_OF.where(V.commit == bindparam("commit"))
BY_ALIAS = _VERSION_OF.join(AT, A.version_id == V.id).where(A.model_id == M.id, A.name == bindparam("alias"))
# with its model's summary columns in every row: a model's page reads both in this one query (service.model_page)
ALL_VERSIONS = (core_select(*VERSION_COLUMNS, M.visibility, _ALIASES.label("aliases"), M.task, M.modality, M.license,
                            M.description, M.tags, M.created_at.label("model_created_at"),
                            M.updated_at.label("model_updated_at"))
                .select_from(VT.join(MT, V.model_id == M.id).join(NT, M.namespace_id == NS.id))
                .where(NS.name == bindparam("ns"), M.name == bindparam("name")).order_by(V.number))
# a model's summary with the number `latest` names, in one row
_LATEST = (core_select(V.number).select_from(AT.join(VT, A.version_id == V.id))
           .where(A.model_id == M.id, A.name == "latest").correlate(MT).scalar_subquery())
SUMMARY = (core_select(M.id, M.task, M.modality, M.license, M.description, M.tags, M.visibility, M.created_at,
                  M.updated_at, _LATEST.label("latest"))
           .select_from(MT.join(NT, M.namespace_id == NS.id))
           .where(NS.name == bindparam("ns"), M.name == bindparam("name")))
MODEL = (select(Model, Namespace).join(Namespace, Model.namespace_id == Namespace.id)
         .where(Namespace.name == bindparam("ns"), Model.name == bindparam("name")))
ALIASES_OF_VERSION = select(Alias.name).where(Alias.version_id == bindparam("version"))
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


# the session of `RegistryService.reading()` in this context, if any
_READING: ContextVar[Session | None] = ContextVar("zoo_reading", default=None)


class ReadsMixin:
    """Hot-path helpers of `RegistryService` (which provides `engine` and the row helpers)."""

    _fixed_cache: FixedCache
    engine: Engine

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Several reads in one session (one connection checkout, one snapshot): a model's page reads its summary,
        its versions and its latest version; a session each cost as much as their queries."""
        if _READING.get() is not None:
            yield
            return
        with Session(self.engine) as session:
            token = _READING.set(session)
            try:
                yield
            finally:
                _READING.reset(token)

    @contextmanager
    def _read_session(self) -> Iterator[Session]:
        """The session of `reading()` when one is open, else a new one."""
        shared = _READING.get()
        if shared is not None:
            yield shared
            return
        with Session(self.engine) as session:
            yield session

    def _find_version(self, session: Session, ref: ModelRef, viewer: Viewer) -> Row | None:
        """The version `ref` names (a row of VERSION_COLUMNS, its card, its model's visibility, its aliases joined
        by commas, whether it was attested or ranked) in one query; None when there is none or the viewer may not
        read it (the caller then takes the step-by-step path, which says precisely what is missing and suggests
        names)."""
        revision = ref.revision or "latest"
        params = {"ns": ref.namespace, "name": ref.name}
        key, value = revision_key(revision)
        params[key] = value
        stmt = {"number": BY_NUMBER, "commit": BY_COMMIT, "alias": BY_ALIAS}[key]
        row = session.connection().execute(stmt, params).first()
        if row is None or not viewer.can_see(row.visibility, ref.namespace):
            return None
        if not viewer.can_read_version(row.status, ref.namespace):
            return None
        return row

    def _version_aliases(self, session: Session, version_id: int) -> list[str]:
        return list(session.exec(ALIASES_OF_VERSION, params={"version": version_id}).all())

    def _fixed(self, session: Session, versions: list[Version] | list[Row]) -> dict[int, Fixed]:
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

    def _model_versions(self, session: Session, ref: ModelRef, viewer: Viewer) -> list[Row] | None:
        """A model's versions (oldest first; rows of VERSION_COLUMNS) in one query; None when it has none or the
        viewer may not read it (the caller checks the model the step-by-step way)."""
        rows = session.connection().execute(ALL_VERSIONS, {"ns": ref.namespace, "name": ref.name}).all()
        if not rows or not viewer.can_see(rows[0].visibility, ref.namespace):
            return None
        return [v for v in rows if viewer.can_read_version(v.status, ref.namespace)] or None
