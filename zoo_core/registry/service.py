"""The registry service: push, resolve, browse, search, lineage, aliases, tokens. Used embedded (the CLI and
Python talk to it directly) or behind the server; both transports expose exactly these operations. The server's
routes only parse, authorise and serialise: every rule of the registry lives here (reading, changing, tokens),
in publishing.py (storing, assembling and publishing versions) and in queries.py (lineage, search).

Publication is atomic: every blob is stored and verified first, then one database transaction makes the version
visible with its files, metrics, lineage and the `latest` alias. A failure before the commit leaves no version
(only unreferenced blobs, which `gc` removes).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Row, or_
from sqlalchemy.exc import IntegrityError as DbIntegrityError
from sqlmodel import Session, select

from zoo_core.errors import (
    AuthError,
    CardError,
    EntryNotFoundError,
    ForbiddenError,
    ModelNotFoundError,
    NotFoundError,
    RevisionNotFoundError,
    UnknownAliasError,
    ZooError,
    close_matches,
)
from zoo_core.registry import version_rows as rows
from zoo_core.registry.attestations import AttestationsMixin
from zoo_core.registry.blobs import open_blob_store
from zoo_core.registry.cards import check_alias_card, check_card_policy, missing_for_publication
from zoo_core.registry.columns import check_tags, fit, version_columns
from zoo_core.registry.db import create_db_engine, write_lock
from zoo_core.registry.file_lookup import FileLookupMixin
from zoo_core.registry.files import file_matches, folder_complete, materialise
from zoo_core.registry.models import (
    Alias,
    AliasEvent,
    FileEntry,
    LineageEdge,
    Model,
    Namespace,
    Version,
    VersionMetric,
    utcnow,
)
from zoo_core.registry.publishing import PublishingMixin, apply_to_model, yaml_or_none
from zoo_core.registry.queries import QueriesMixin
from zoo_core.registry.rankings import RankingsMixin
from zoo_core.registry.reads import MODEL, SUMMARY, ReadsMixin
from zoo_core.registry.refs import ModelRef, check_alias, check_namespace, parse_ref, revision_key
from zoo_core.registry.tokens import TokensMixin
from zoo_core.registry.types import (
    ADMIN,
    ANONYMOUS,
    GC_GRACE,
    FileSpec,
    VersionInfo,
    Viewer,
    check_path,
    manifest_commit,
)
from zoo_core.registry.uploads import UploadsMixin
from zoo_core.settings import get_settings

# the registry's public names, importable from here as before the split into types/queries/files
__all__ = ["ADMIN", "ANONYMOUS", "AuthError", "CardError", "EntryNotFoundError", "FileSpec", "ForbiddenError",
           "ModelNotFoundError", "NotFoundError", "RegistryService", "RevisionNotFoundError", "UnknownAliasError",
           "VersionInfo", "Viewer", "check_path", "file_matches", "folder_complete", "manifest_commit", "materialise"]


class RegistryService(ReadsMixin, PublishingMixin, QueriesMixin, AttestationsMixin, RankingsMixin, UploadsMixin,
                      TokensMixin, FileLookupMixin):
    def __init__(self, database_url: str, blob_root: str | Path, blob_url: str | None = None,
                 card_policy: str | None = None):
        """`blob_root`: a local blob folder (also the home of in-flight uploads); `blob_url` (or ZOO_BLOB_URL),
        e.g. `s3://bucket/prefix`, keeps the blobs in an S3-compatible bucket instead. `card_policy` (or
        ZOO_CARD_POLICY): see `cards.CARD_POLICIES`."""
        settings = get_settings()
        self.card_policy = check_card_policy(card_policy or settings.card_policy)
        self.engine = create_db_engine(database_url)
        self.write_lock = write_lock(self.engine)  # held by the hot writes from first statement to commit (db.py)
        self.blobs = open_blob_store(blob_url or settings.blob_url or blob_root, blob_root)

    # -- helpers -----------------------------------------------------------------------------------------
    def _model(self, session: Session, ref: ModelRef, viewer: Viewer,
               asker: Viewer | None = None) -> tuple[Model, Namespace]:
        """The model row, if `viewer` may read it; else ModelNotFoundError suggesting close names that whoever
        asks (`asker`, by default the viewer) can see, never a private name of someone else."""
        row = session.exec(MODEL, params={"ns": ref.namespace, "name": ref.name}).first()
        if row is None or not viewer.can_read(row[0], ref.namespace):
            asker = asker or viewer
            raise ModelNotFoundError(ref.model_id, self._visible_ids_near(session, asker, ref.namespace),
                                     anonymous=not asker.namespaces and not asker.admin)
        return row

    def _visible_ids_near(self, session: Session, viewer: Viewer, namespace: str) -> list[str]:
        """What a not-found model's suggestions are chosen from: the visible models of its namespace, or of the
        namespaces spelled like it when it has none. Not every model: at 100,000 models that read and compare
        cost ~150 ms of one process's CPU for each mistyped name (a cheap way to load a server)."""
        namespaces = session.exec(select(Namespace.name)).all()
        near = [namespace] if namespace in namespaces else close_matches(namespace, namespaces)
        stmt = (select(Namespace.name, Model.name).join(Namespace, Model.namespace_id == Namespace.id)
                .where(Namespace.name.in_(near)))
        if not viewer.admin:
            stmt = stmt.where(or_(Model.visibility == "public", Namespace.name.in_(list(viewer.namespaces))))
        return [f"{ns}/{name}" for ns, name in session.exec(stmt)]

    def _version(self, session: Session, model: Model, ref: ModelRef, viewer: Viewer = ADMIN) -> Version:
        revision = ref.revision or "latest"
        query = select(Version).where(Version.model_id == model.id)
        key, value = revision_key(revision)
        if key == "number":
            version = session.exec(query.where(Version.number == value)).first()
        elif key == "commit":
            version = session.exec(query.where(Version.commit == value)).first()
        else:
            alias = session.get(Alias, (model.id, revision))
            if alias is None:
                known = session.exec(select(Alias.name).where(Alias.model_id == model.id)).all()
                raise UnknownAliasError(f"alias of {ref.model_id}", revision, known)
            version = session.get(Version, alias.version_id)
        if version is None or not viewer.can_read_version(version.status, ref.namespace):  # a draft: not for all
            raise RevisionNotFoundError(f"version '{revision}' of '{ref.model_id}' not found")
        return version

    def _namespace(self, session: Session, name: str) -> Namespace:
        ns = session.exec(select(Namespace).where(Namespace.name == name)).first()
        if ns is None:
            ns = Namespace(name=check_namespace(name))
            session.add(ns)
            session.flush()
        return ns

    def _aliases_by_version(self, session: Session, model_ids: list[int]) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        if model_ids:
            for alias in session.exec(select(Alias).where(Alias.model_id.in_(model_ids))):
                out.setdefault(alias.version_id, []).append(alias.name)
        return out

    def _metrics_by_version(self, session: Session, version_ids: list[int]) -> dict[int, dict[str, float]]:
        out: dict[int, dict[str, float]] = {}
        if version_ids:
            for m in session.exec(select(VersionMetric).where(VersionMetric.version_id.in_(version_ids))):
                out.setdefault(m.version_id, {})[m.name] = m.value
        return out

    def _info(self, session: Session, model_id: str, version: Version | Row, *, aliases=None, metrics=None,
              detail: bool = False, viewer: Viewer = ADMIN, attested: bool = True, ranked: bool = True
              ) -> VersionInfo:
        """`version`: its row or object; `attested` / `ranked` False when it is known to have no attestation or
        ranking (reads.BY_*: no query for them then)."""
        if aliases is None:
            aliases = self._version_aliases(session, version.id)
        fixed = self._fixed(session, [version])[version.id] if metrics is None or detail else None  # reads.py
        if metrics is None:
            metrics = dict(fixed.metrics)
        info = VersionInfo(model_id, version.number, version.status, version.commit, version.created_at.isoformat(),
                           version.created_by, version.backbone, version.family, version.strategy, metrics,
                           sorted(aliases), status_reason=version.status_reason,
                           card_complete=version.card_complete, card_missing=list(version.card_missing or []),
                           message=version.message)
        if detail:
            info.files, info.size = [dict(f) for f in fixed.files], fixed.size
            info.parents = self._parents(session, version.id, viewer) if fixed.internal_parents else \
                [dict(p) for p in fixed.external_parents]
            info.card = version.card
            info.attestations = self._attestations(session, version.id) if attested else []
            info.rankings = self._rankings(session, version.id) if ranked else []
        return info

    def _parents(self, session: Session, version_id: int, viewer: Viewer) -> list[dict[str, Any]]:
        """A version's parents as `viewer` may see them: a private parent it cannot read is `{"ref": None,
        "private": True}` (its owner may derive public versions from it; nobody else learns its name)."""
        parents = []
        for edge in session.exec(select(LineageEdge).where(LineageEdge.child_id == version_id)):
            if edge.parent_id is not None:
                parent = session.get(Version, edge.parent_id)
                model = session.get(Model, parent.model_id)
                ns = session.get(Namespace, model.namespace_id)
                if not viewer.can_read(model, ns.name) or not viewer.can_read_version(parent.status, ns.name):
                    parents.append({"ref": None, "private": True, "relation": edge.relation})
                    continue
                parents.append({"ref": f"{ns.name}/{model.name}@{parent.number}", "relation": edge.relation})
            else:
                parents.append({"ref": edge.parent_external, "relation": edge.relation})
        return parents

    def _move_alias(self, session: Session, model: Model, name: str, version: Version, actor: str | None) -> None:
        """Point `name` at `version` with the statements a publish uses (version_rows.py), in the session's
        transaction: its pending changes flushed first, the model's search row indexed again when `latest` moved,
        the change counter moved (the ORM's flush events see none of these statements)."""
        session.flush()
        connection = session.connection()
        rows.lock_model_id(connection, model.id)  # PostgreSQL: concurrent moves queue here (SQLite: the write lock)
        rows.move_aliases(connection, model.id, version.id, version.number,
                          rows.alias_states(connection, model.id, [name]), actor, utcnow())
        rows.finish(connection, model.id, reindexed=name == "latest")

    # -- reading -----------------------------------------------------------------------------------------
    def resolve(self, model_ref: str, viewer: Viewer = ADMIN) -> VersionInfo:
        """The version `model_ref` names (number, `v3`, alias, commit; `latest` when none), with its files, card
        and parents. NotFoundError subclasses say what is missing and suggest close names."""
        ref = parse_ref(model_ref)
        with self._read_session() as session:  # reads.py
            row = self._find_version(session, ref, viewer)  # one query (reads.py)
            if row is None:  # not there, or not for this viewer: the precise error, step by step
                model, _ = self._model(session, ref, viewer)
                version = self._version(session, model, ref, viewer)
                return self._info(session, ref.model_id, version, detail=True, viewer=viewer)
            return self._info(session, ref.model_id, row, aliases=row.aliases.split(",") if row.aliases else [],
                              detail=True, viewer=viewer, attested=row.attested, ranked=row.ranked)

    def versions(self, model_ref: str, viewer: Viewer = ADMIN) -> list[VersionInfo]:
        return self.model_page(model_ref, viewer)[1]

    def model_page(self, model_ref: str, viewer: Viewer = ADMIN) -> tuple[dict[str, Any], list[VersionInfo]]:
        """`model_summary` and `versions` together, in one query when the viewer may read a version of it (each
        row carries its model's columns; `latest` is the row the alias names)."""
        ref = parse_ref(model_ref)
        with self._read_session() as session:  # reads.py
            rows = self._model_versions(session, ref, viewer)  # one query (reads.py)
            if rows is None:  # no version yet, or not for this viewer (then model_summary says so)
                return self.model_summary(model_ref, viewer), []
            fixed = self._fixed(session, rows)
            infos = []
            for v in rows:
                info = self._info(session, ref.model_id, v, aliases=v.aliases.split(",") if v.aliases else [],
                                  metrics=dict(fixed[v.id].metrics))
                info.size = fixed[v.id].size
                infos.append(info)
            top = rows[0]
            summary = {"id": ref.model_id, "task": top.task, "modality": top.modality, "license": top.license,
                       "description": top.description, "tags": top.tags, "visibility": top.visibility,
                       "created_at": top.model_created_at.isoformat(), "updated_at": top.model_updated_at.isoformat(),
                       "latest": next((i.number for i in infos if "latest" in i.aliases), None)}
            return summary, infos

    def model_summary(self, model_ref: str, viewer: Viewer = ADMIN) -> dict[str, Any]:
        ref = parse_ref(model_ref)
        with self._read_session() as session:  # reads.py
            model = session.connection().execute(SUMMARY, {"ns": ref.namespace, "name": ref.name}).first()  # one query
            if model is None or not viewer.can_see(model.visibility, ref.namespace):
                self._model(session, ref, viewer)  # says precisely what is missing
            return {"id": ref.model_id, "task": model.task, "modality": model.modality, "license": model.license,
                    "description": model.description, "tags": model.tags, "visibility": model.visibility,
                    "created_at": model.created_at.isoformat(), "updated_at": model.updated_at.isoformat(),
                    "latest": model.latest}

    def version_recipe(self, info: VersionInfo) -> dict[str, Any] | None:
        """The resolved recipe a version was trained by (its recipe.yaml), or None when it has none; `info` is a
        version already resolved (with its files) for whoever asks."""
        specs = {f["path"]: FileSpec(f["path"], f["sha256"], f["size"]) for f in info.files}
        recipe = yaml_or_none(self._read_small(specs, "recipe.yaml"))
        return recipe if isinstance(recipe, dict) else None

    def downloadable(self, model_ref: str, viewer: Viewer = ADMIN) -> VersionInfo:
        """`resolve`, for fetching files: a yanked version still answers `resolve` (to say why it was yanked) but
        its files are no longer served."""
        info = self.resolve(model_ref, viewer)
        if info.status == "yanked":
            raise RevisionNotFoundError(f"{info.model_id}@{info.number} was yanked: "
                                        f"{info.status_reason or 'no reason given'}")
        return info

    def open_file(self, model_ref: str, path: str, viewer: Viewer = ADMIN) -> tuple[FileSpec, VersionInfo]:
        """One file of a downloadable version; EntryNotFoundError (naming the version's commit) when it has none."""
        info = self.downloadable(model_ref, viewer)
        for f in info.files:
            if f["path"] == path:
                return FileSpec(path, f["sha256"], f["size"]), info
        raise EntryNotFoundError(f"file '{path}' not found in {info.model_id}@{info.number}", commit=info.commit)

    def read(self, spec: FileSpec, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """A stored file's bytes start..end (inclusive), streamed."""
        return self.blobs.read_range(spec.sha256, start, end)

    def default_version(self, model_ref: str, viewer: Viewer = ADMIN,
                        versions: list[VersionInfo] | None = None) -> VersionInfo | None:
        """The version a model is shown at: `latest` when one is published, else the newest draft; None when the
        model has no version yet. `versions`: the model's `versions()` when the caller has them already."""
        versions = self.versions(model_ref, viewer) if versions is None else versions
        if not versions:
            return None
        chosen = next((v for v in versions if "latest" in v.aliases), versions[-1])
        return self.resolve(f"{parse_ref(model_ref).model_id}@{chosen.number}", viewer)

    def pull(self, model_ref: str, dest: str | Path | None = None, viewer: Viewer = ADMIN,
             cache: str | Path | None = None) -> Path:
        """Materialise a version's files in `dest` (or a cache folder keyed by commit), each checked by sha256."""
        info = self.downloadable(model_ref, viewer)
        target = Path(dest) if dest else Path(cache or Path(self.blobs.root).parent / "cache") / info.commit
        return materialise(target, info.files, lambda entry: self.blobs.read_range(entry["sha256"]))

    # -- changing ----------------------------------------------------------------------------------------
    def set_alias(self, model_ref: str, alias: str, version: int, viewer: Viewer = ADMIN) -> VersionInfo:
        """Point `alias` at a published or deprecated version (recorded in the alias history)."""
        ref = parse_ref(model_ref)
        check_alias(alias)
        if not viewer.can_write(ref.namespace):
            raise ForbiddenError(f"a token for namespace '{ref.namespace}' is needed to move aliases of "
                                 f"{ref.model_id}")
        for attempt in range(3):  # two requests creating the same alias at once race on its key: the loser retries
            with self.write_lock, Session(self.engine, expire_on_commit=False) as session:
                model, _ = self._model(session, ref, viewer)
                target = self._version(session, model, ModelRef(ref.namespace, ref.name, str(version)))
                if target.status in ("yanked", "draft"):
                    raise ZooError(f"alias '{alias}' cannot point at {ref.model_id}@{version}: it is {target.status}")
                lacks = [] if target.card_complete else list(target.card_missing or ["a required section"])
                check_alias_card([alias], lacks, self.card_policy, f"{ref.model_id}@{version}'s",
                                 "publish a version with a complete card and point the alias at it")
                try:  # the alias's first setting inserts its row: the key decides between two at once
                    self._move_alias(session, model, alias, target, viewer.name)
                    session.commit()
                except DbIntegrityError:
                    if attempt == 2:
                        raise
                    continue
                return self._info(session, ref.model_id, target)
        raise AssertionError("unreachable")

    def alias_history(self, model_ref: str, viewer: Viewer = ADMIN) -> list[dict[str, Any]]:
        ref = parse_ref(model_ref)
        with Session(self.engine) as session:
            model, _ = self._model(session, ref, viewer)
            events = session.exec(select(AliasEvent).where(AliasEvent.model_id == model.id)
                                  .order_by(AliasEvent.id)).all()
            return [{"alias": e.alias, "from": e.from_version, "to": e.to_version, "actor": e.actor,
                     "at": e.at.isoformat()} for e in events]

    def set_status(self, model_ref: str, status: str, reason: str | None = None, viewer: Viewer = ADMIN) -> VersionInfo:
        """Deprecate or yank a version (or publish a draft). Yanked versions lose their aliases."""
        ref = parse_ref(model_ref)
        if status not in ("published", "deprecated", "yanked"):
            raise ZooError(f"status is published, deprecated or yanked, not '{status}'")
        fit(reason, Version.status_reason, "the reason")
        if not viewer.can_write(ref.namespace):
            raise ForbiddenError(f"a token for namespace '{ref.namespace}' is needed to change {ref.model_id}")
        with Session(self.engine) as session:
            model, _ = self._model(session, ref, viewer)
            version = self._version(session, model, ref)
            if status == "published" and version.status != "draft":
                raise ZooError(f"{ref.model_id}@{version.number} is {version.status}; only drafts can be published")
            if status == "published" and self.card_policy == "required":
                missing = missing_for_publication(version.card)
                if missing:
                    raise CardError(f"cannot publish: the model card lacks {', '.join(missing)}")
            version.status, version.status_reason = status, reason
            session.add(version)
            if status == "yanked":
                for alias in session.exec(select(Alias).where(Alias.version_id == version.id)).all():
                    self._repoint_alias(session, model, alias, version, viewer.name)
            elif status == "published":
                meta = version.card_data or {}
                tags = check_tags(meta["tags"]) if meta.get("tags") else None
                apply_to_model(model, version_columns(meta, version.config or {}, None), None, tags,
                               version.card or "")
                session.add(model)
                newest = session.exec(select(Version).where(Version.model_id == model.id,
                                                            Version.status == "published")
                                      .order_by(Version.number.desc())).first()
                if newest is None or newest.number <= version.number:
                    self._move_alias(session, model, "latest", version, viewer.name)
            session.commit()
            return self._info(session, ref.model_id, version)

    def _repoint_alias(self, session, model, alias: Alias, yanked: Version, actor) -> None:
        """`latest` falls back to the newest remaining published version; other aliases are removed."""
        fallback = session.exec(select(Version).where(
            Version.model_id == model.id, Version.status == "published", Version.id != yanked.id)
            .order_by(Version.number.desc())).first() if alias.name == "latest" else None
        if fallback is not None:
            self._move_alias(session, model, "latest", fallback, actor)
        else:
            session.delete(alias)
            session.add(AliasEvent(model_id=model.id, alias=alias.name, from_version=yanked.number, to_version=None,
                                   actor=actor))

    # -- tokens and maintenance --------------------------------------------------------------------------
    def gc(self, grace: float = GC_GRACE) -> dict[str, int]:
        """Remove blobs no version references (left by failed or interrupted pushes) and abandoned uploads, once
        they are older than `grace` seconds: a push in flight stores or touches its blobs before it publishes, and
        publication re-checks them inside its transaction, so gc never takes a blob a publish will reference.
        Uploads are leased before their blob becomes visible, and gc lists the blobs before it reads references and
        leases, so every blob it lists has its lease (or its version) in what it reads afterwards."""
        stored = list(self.blobs.all())
        with Session(self.engine) as session:
            referenced = set(session.exec(select(FileEntry.sha256).distinct()).all())
        referenced |= self.leased_blobs()  # uploaded for a publish still to come: kept while the upload lasts
        removed = freed = 0
        for digest in stored:
            if digest in referenced:
                continue
            # age and holders read again under the blob's lock: a push may have touched, leased or referenced it
            # since the snapshot (blobs.touch / delete_unused)
            size = self.blobs.delete_unused(digest, grace, self.held)
            if size is not None:
                removed, freed = removed + 1, freed + size
        self.blobs.clear_tmp(older_than=grace)
        return {"removed": removed, "bytes": freed}


