"""The registry service: push, resolve, browse, search, lineage, aliases, tokens. Used embedded (the CLI and
Python talk to it directly) or behind the server; both transports expose exactly these operations.

Publication is atomic: every blob is stored and verified first, then one database transaction makes the version
visible with its files, metrics, lineage and the `latest` alias. A failure before the commit leaves no version
(only unreferenced blobs, which `gc` removes).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import yaml
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError as DbIntegrityError
from sqlmodel import Session, select

from zoo_core.errors import ZooError
from zoo_core.registry.blobs import open_blob_store
from zoo_core.registry.cards import missing_for_publication, parse_card
from zoo_core.registry.db import create_db_engine
from zoo_core.registry.files import file_matches, folder_complete, materialise
from zoo_core.registry.models import (
    Alias,
    AliasEvent,
    FileEntry,
    LineageEdge,
    Model,
    Namespace,
    Token,
    Version,
    VersionMetric,
    utcnow,
)
from zoo_core.registry.queries import QueriesMixin
from zoo_core.registry.refs import ModelRef, check_alias, check_namespace, parse_ref
from zoo_core.registry.types import (
    ADMIN,
    ANONYMOUS,
    AuthError,
    CardError,
    FileSpec,
    ModelNotFoundError,
    NotFoundError,
    RevisionNotFoundError,
    UnknownAliasError,
    VersionInfo,
    Viewer,
    check_path,
    manifest_commit,
)
from zoo_core.settings import get_settings

# `import`: a model registered from outside (zoo import), its parent being the source it was imported from.
RELATIONS = ("finetune", "adapter", "feature-extraction", "quantized", "merge", "import")
# the registry's public names, importable from here as before the split into types/queries/files
__all__ = ["ADMIN", "ANONYMOUS", "AuthError", "CardError", "FileSpec", "ModelNotFoundError", "NotFoundError",
           "RegistryService", "RevisionNotFoundError", "UnknownAliasError", "VersionInfo", "Viewer", "check_path",
           "file_matches", "folder_complete", "manifest_commit", "materialise"]


class RegistryService(QueriesMixin):
    def __init__(self, database_url: str, blob_root: str | Path, blob_url: str | None = None):
        """`blob_root`: a local blob folder (also the home of in-flight uploads); `blob_url` (or ZOO_BLOB_URL),
        e.g. `s3://bucket/prefix`, keeps the blobs in an S3-compatible bucket instead."""
        self.engine = create_db_engine(database_url)
        self.blobs = open_blob_store(blob_url or get_settings().blob_url or blob_root, blob_root)

    # -- helpers -----------------------------------------------------------------------------------------
    def _model(self, session: Session, ref: ModelRef, viewer: Viewer) -> tuple[Model, Namespace]:
        row = session.exec(select(Model, Namespace).join(Namespace).where(
            Namespace.name == ref.namespace, Model.name == ref.name)).first()
        if row is None or not viewer.can_read(row[0], ref.namespace):
            raise ModelNotFoundError(f"model '{ref.model_id}' not found")
        return row

    def _version(self, session: Session, model: Model, ref: ModelRef) -> Version:
        revision = ref.revision or "latest"
        query = select(Version).where(Version.model_id == model.id)
        number = revision[1:] if revision.startswith("v") and revision[1:].isdigit() else revision
        if number.isdigit():
            version = session.exec(query.where(Version.number == int(number))).first()
        elif len(revision) == 40 and all(c in "0123456789abcdef" for c in revision):
            version = session.exec(query.where(Version.commit == revision)).first()
        else:
            alias = session.get(Alias, (model.id, revision))
            if alias is None:
                known = session.exec(select(Alias.name).where(Alias.model_id == model.id)).all()
                raise UnknownAliasError(f"alias of {ref.model_id}", revision, known)
            version = session.get(Version, alias.version_id)
        if version is None:
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

    def _info(self, session: Session, model_id: str, version: Version, *, aliases=None, metrics=None,
              detail: bool = False) -> VersionInfo:
        if aliases is None:
            aliases = self._aliases_by_version(session, [version.model_id]).get(version.id, [])
        if metrics is None:
            metrics = self._metrics_by_version(session, [version.id]).get(version.id, {})
        info = VersionInfo(model_id, version.number, version.status, version.commit, version.created_at.isoformat(),
                           version.created_by, version.backbone, version.family, version.strategy, metrics,
                           sorted(aliases), status_reason=version.status_reason)
        if detail:
            files = session.exec(select(FileEntry).where(FileEntry.version_id == version.id)
                                 .order_by(FileEntry.path)).all()
            info.files = [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in files]
            info.size = sum(f.size for f in files)
            info.parents = self._parents(session, version.id)
            info.card = version.card
        return info

    def _parents(self, session: Session, version_id: int) -> list[dict[str, Any]]:
        parents = []
        for edge in session.exec(select(LineageEdge).where(LineageEdge.child_id == version_id)):
            if edge.parent_id is not None:
                parent = session.get(Version, edge.parent_id)
                model = session.get(Model, parent.model_id)
                ns = session.get(Namespace, model.namespace_id)
                parents.append({"ref": f"{ns.name}/{model.name}@{parent.number}", "relation": edge.relation})
            else:
                parents.append({"ref": edge.parent_external, "relation": edge.relation})
        return parents

    # -- publishing --------------------------------------------------------------------------------------
    def store_file(self, stream: BinaryIO | Iterable[bytes], path: str, size: int | None = None,
                   sha256: str | None = None, limit: int | None = None) -> FileSpec:
        """Store one file's bytes (verified against size/sha256 when given) ahead of `publish`."""
        check_path(path)
        digest, written = self.blobs.put(stream, size=size, sha256=sha256, limit=limit, name=path)
        return FileSpec(path, digest, written)

    def push_folder(self, folder: str | Path, model_ref: str, *, viewer: Viewer = ADMIN, status: str = "published",
                    parent: str | None = None, relation: str | None = None, visibility: str | None = None,
                    description: str | None = None, tags: list[str] | None = None) -> VersionInfo:
        """Publish a checkpoint folder as the next version of `model_ref`."""
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise ZooError(f"'{folder}' is not a folder")
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        if not files:
            raise ZooError(f"'{folder}' holds no files")
        specs = []
        for path in files:
            with path.open("rb") as handle:
                specs.append(self.store_file(handle, path.relative_to(folder).as_posix(), size=path.stat().st_size))
        return self.publish(model_ref, specs, viewer=viewer, status=status, parent=parent, relation=relation,
                            visibility=visibility, description=description, tags=tags)

    def create_model(self, model_ref: str, viewer: Viewer = ADMIN, visibility: str | None = None) -> bool:
        """Create an empty model (the Hub client's create_repo); False when it already exists."""
        ref = parse_ref(model_ref)
        if not viewer.can_write(ref.namespace):
            raise AuthError(f"a token for namespace '{ref.namespace}' is needed to create {ref.model_id}")
        with Session(self.engine) as session:
            ns = self._namespace(session, ref.namespace)
            if session.exec(select(Model).where(Model.namespace_id == ns.id, Model.name == ref.name)).first():
                return False
            session.add(Model(namespace_id=ns.id, name=ref.name, visibility=visibility or "public"))
            try:
                session.commit()
            except DbIntegrityError:
                return False
            return True

    def _read_small(self, specs: dict[str, FileSpec], name: str) -> str | None:
        spec = specs.get(name)
        if spec is None or spec.size > 10 * 1024 * 1024:
            return None
        return b"".join(self.blobs.read_range(spec.sha256)).decode("utf-8", errors="replace")

    def publish(self, model_ref: str, files: list[FileSpec], *, viewer: Viewer = ADMIN, status: str = "published",
                parent: str | None = None, relation: str | None = None, visibility: str | None = None,
                description: str | None = None, tags: list[str] | None = None) -> VersionInfo:
        ref = parse_ref(model_ref)
        if ref.revision:
            raise ZooError(f"push to '{ref.model_id}', not to a revision: version numbers are assigned")
        if not viewer.can_write(ref.namespace):
            raise AuthError(f"a token for namespace '{ref.namespace}' is needed to push to {ref.model_id}")
        if status not in ("draft", "published"):
            raise ZooError(f"a new version is draft or published, not '{status}'")
        if visibility not in (None, "public", "private"):
            raise ZooError(f"visibility is public or private, not '{visibility}'")
        by_path = {f.path: f for f in files}
        if len(by_path) != len(files):
            raise ZooError("two files with the same name in one version")
        for f in files:
            check_path(f.path)
            if not self.blobs.exists(f.sha256):
                raise ZooError(f"file '{f.path}' was not stored before publishing")
        card = self._read_small(by_path, "README.md") or ""
        if status == "published":
            missing = missing_for_publication(card)
            if missing:
                raise CardError(f"cannot publish {ref.model_id}: the model card lacks " + ", ".join(missing)
                                + " (push as a draft to keep it unpublished)")
        meta = parse_card(card)[0] if card else {}
        config = _json_or_empty(self._read_small(by_path, "config.json"))
        config = config.get("transfer_zoo", config)  # a zoo checkpoint in a Hub library's layout
        recipe = _yaml_or_none(self._read_small(by_path, "recipe.yaml"))
        metrics = {k: float(v) for k, v in _json_or_empty(self._read_small(by_path, "metrics.json")).items()
                   if isinstance(v, int | float)}
        parents = self._lineage_parents(parent, relation, meta, recipe)
        for attempt in range(5):  # concurrent pushes race for the next number; the unique key decides
            try:
                return self._insert_version(ref, files, viewer, status, visibility, description, tags, card, meta,
                                            config, recipe, metrics, parents)
            except DbIntegrityError:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def _lineage_parents(self, parent, relation, meta, recipe) -> list[tuple[str, str]]:
        relation = relation or meta.get("base_model_relation") or "finetune"
        if relation not in RELATIONS:
            raise ZooError(f"relation '{relation}' is not one of {', '.join(RELATIONS)}")
        if parent:
            return [(parent, relation)]
        base = (recipe or {}).get("resolved", {}).get("base") or meta.get("base_model")
        if not base or base == "scratch" or str(base).startswith("scratch:"):
            return []
        return [(str(base), relation)]

    def _insert_version(self, ref, files, viewer, status, visibility, description, tags, card, meta, config,
                        recipe, metrics, parents) -> VersionInfo:
        with Session(self.engine) as session:
            ns = self._namespace(session, ref.namespace)
            model = session.exec(select(Model).where(Model.namespace_id == ns.id, Model.name == ref.name)).first()
            backbone = config.get("backbone", {}) if isinstance(config.get("backbone"), dict) else {}
            if model is None:
                model = Model(namespace_id=ns.id, name=ref.name, visibility=visibility or "public")
                session.add(model)
            model.task = meta.get("pipeline_tag") or model.task
            model.modality = backbone.get("modality") or model.modality
            if not backbone and config.get("model_type"):  # a Hugging Face config (zoo import)
                backbone = {"family": config["model_type"], "name": None}
            model.license = meta.get("license") or model.license
            if description is not None:
                model.description = description
            elif not model.description:
                model.description = _first_paragraph(card)
            model.tags = sorted(set(tags if tags is not None else (meta.get("tags") or model.tags or [])))
            if visibility:
                model.visibility = visibility
            model.updated_at = utcnow()
            session.flush()
            number = (session.exec(select(func.max(Version.number)).where(Version.model_id == model.id)).one()
                      or 0) + 1
            strategy = ((recipe or {}).get("strategy") or {}).get("name")
            version = Version(model_id=model.id, number=number, status=status,
                              commit=manifest_commit(ref.model_id, number, files), created_by=viewer.name,
                              card=card, card_data=meta, config=config, backbone=backbone.get("name"),
                              family=backbone.get("family"), strategy=strategy, library=meta.get("library_name"))
            session.add(version)
            session.flush()
            session.add_all(FileEntry(version_id=version.id, path=f.path, size=f.size, sha256=f.sha256) for f in files)
            session.add_all(VersionMetric(version_id=version.id, name=k, value=v) for k, v in metrics.items())
            for parent, relation in parents:
                session.add(self._edge(session, version.id, parent, relation, recipe))
            if status == "published":
                self._move_alias(session, model, "latest", version, viewer.name)
            session.commit()
            return self._info(session, ref.model_id, version, detail=True)

    def _edge(self, session, child_id: int, parent: str, relation: str, recipe) -> LineageEdge:
        if parent.startswith("zoo:") or (":" not in parent and "/" in parent):
            pref = parse_ref(parent)
            model, _ = self._model(session, pref, ADMIN)
            target = self._version(session, model, pref)
            return LineageEdge(child_id=child_id, parent_id=target.id, relation=relation, recipe=recipe)
        return LineageEdge(child_id=child_id, parent_external=parent, relation=relation, recipe=recipe)

    def _move_alias(self, session: Session, model: Model, name: str, version: Version, actor: str | None) -> None:
        alias = session.get(Alias, (model.id, name))
        previous = session.get(Version, alias.version_id).number if alias else None
        if alias is None:
            alias = Alias(model_id=model.id, name=name, version_id=version.id)
        alias.version_id = version.id
        session.add(alias)
        session.add(AliasEvent(model_id=model.id, alias=name, from_version=previous, to_version=version.number,
                               actor=actor))

    # -- reading -----------------------------------------------------------------------------------------
    def resolve(self, model_ref: str, viewer: Viewer = ADMIN) -> VersionInfo:
        ref = parse_ref(model_ref)
        with Session(self.engine) as session:
            model, _ = self._model(session, ref, viewer)
            return self._info(session, ref.model_id, self._version(session, model, ref), detail=True)

    def versions(self, model_ref: str, viewer: Viewer = ADMIN) -> list[VersionInfo]:
        ref = parse_ref(model_ref)
        with Session(self.engine) as session:
            model, _ = self._model(session, ref, viewer)
            rows = session.exec(select(Version).where(Version.model_id == model.id).order_by(Version.number)).all()
            aliases = self._aliases_by_version(session, [model.id])
            metrics = self._metrics_by_version(session, [v.id for v in rows])
            sizes = dict(session.exec(select(FileEntry.version_id, func.sum(FileEntry.size))
                                      .where(FileEntry.version_id.in_([v.id for v in rows]))
                                      .group_by(FileEntry.version_id)).all()) if rows else {}
            infos = [self._info(session, ref.model_id, v, aliases=aliases.get(v.id, []), metrics=metrics.get(v.id, {}))
                     for v in rows]
            for info, v in zip(infos, rows, strict=True):
                info.size = int(sizes.get(v.id) or 0)
            return infos

    def model_summary(self, model_ref: str, viewer: Viewer = ADMIN) -> dict[str, Any]:
        ref = parse_ref(model_ref)
        with Session(self.engine) as session:
            model, _ = self._model(session, ref, viewer)
            return {"id": ref.model_id, "task": model.task, "modality": model.modality, "license": model.license,
                    "description": model.description, "tags": model.tags, "visibility": model.visibility,
                    "created_at": model.created_at.isoformat(), "updated_at": model.updated_at.isoformat()}

    def version_recipe(self, info: VersionInfo) -> dict[str, Any] | None:
        """The resolved recipe a version was trained by (its recipe.yaml), or None when it has none; `info` is a
        version already resolved (with its files) for whoever asks."""
        specs = {f["path"]: FileSpec(f["path"], f["sha256"], f["size"]) for f in info.files}
        recipe = _yaml_or_none(self._read_small(specs, "recipe.yaml"))
        return recipe if isinstance(recipe, dict) else None

    def open_file(self, model_ref: str, path: str, viewer: Viewer = ADMIN) -> tuple[FileSpec, VersionInfo]:
        info = self.resolve(model_ref, viewer)
        if info.status == "yanked":
            raise RevisionNotFoundError(f"{info.model_id}@{info.number} was yanked: "
                                        f"{info.status_reason or 'no reason given'}")
        for f in info.files:
            if f["path"] == path:
                return FileSpec(path, f["sha256"], f["size"]), info
        raise NotFoundError(f"file '{path}' not found in {info.model_id}@{info.number}")

    def pull(self, model_ref: str, dest: str | Path | None = None, viewer: Viewer = ADMIN,
             cache: str | Path | None = None) -> Path:
        """Materialise a version's files in `dest` (or a cache folder keyed by commit), each checked by sha256."""
        info = self.resolve(model_ref, viewer)
        if info.status == "yanked":
            raise RevisionNotFoundError(f"{info.model_id}@{info.number} was yanked: "
                                        f"{info.status_reason or 'no reason given'}")
        target = Path(dest) if dest else Path(cache or Path(self.blobs.root).parent / "cache") / info.commit
        return materialise(target, info.files, lambda entry: self.blobs.read_range(entry["sha256"]))

    # -- changing ----------------------------------------------------------------------------------------
    def set_alias(self, model_ref: str, alias: str, version: int, viewer: Viewer = ADMIN) -> VersionInfo:
        ref = parse_ref(model_ref)
        check_alias(alias)
        if not viewer.can_write(ref.namespace):
            raise AuthError(f"a token for namespace '{ref.namespace}' is needed to move aliases of {ref.model_id}")
        with Session(self.engine) as session:
            model, _ = self._model(session, ref, viewer)
            target = self._version(session, model, ModelRef(ref.namespace, ref.name, str(version)))
            if target.status in ("yanked", "draft"):
                raise ZooError(f"alias '{alias}' cannot point at {ref.model_id}@{version}: it is {target.status}")
            self._move_alias(session, model, alias, target, viewer.name)
            session.commit()
            return self._info(session, ref.model_id, target)

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
        if not viewer.can_write(ref.namespace):
            raise AuthError(f"a token for namespace '{ref.namespace}' is needed to change {ref.model_id}")
        with Session(self.engine) as session:
            model, _ = self._model(session, ref, viewer)
            version = self._version(session, model, ref)
            if status == "published" and version.status != "draft":
                raise ZooError(f"{ref.model_id}@{version.number} is {version.status}; only drafts can be published")
            if status == "published":
                missing = missing_for_publication(version.card)
                if missing:
                    raise CardError(f"cannot publish: the model card lacks {', '.join(missing)}")
            version.status, version.status_reason = status, reason
            session.add(version)
            if status == "yanked":
                for alias in session.exec(select(Alias).where(Alias.version_id == version.id)).all():
                    self._repoint_alias(session, model, alias, version, viewer.name)
            elif status == "published":
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
    def create_token(self, namespace: str, name: str = "default") -> str:
        token = "zoo_" + secrets.token_urlsafe(32)
        with Session(self.engine) as session:
            ns = self._namespace(session, namespace)
            session.add(Token(namespace_id=ns.id, name=name, token_hash=_hash_token(token)))
            session.commit()
        return token

    def viewer_for(self, token: str | None) -> Viewer:
        if not token:
            return ANONYMOUS
        with Session(self.engine) as session:
            row = session.exec(select(Token, Namespace).join(Namespace)
                               .where(Token.token_hash == _hash_token(token))).first()
        if row is None:
            raise AuthError("invalid token")
        return Viewer(namespaces=frozenset({row[1].name}), name=row[1].name)

    def gc(self) -> dict[str, int]:
        """Remove blobs no version references (left by failed or interrupted pushes) and temporary files."""
        with Session(self.engine) as session:
            referenced = set(session.exec(select(FileEntry.sha256).distinct()).all())
        removed = freed = 0
        for digest in list(self.blobs.all()):
            if digest not in referenced:
                freed += self.blobs.delete(digest)
                removed += 1
        self.blobs.clear_tmp()
        return {"removed": removed, "bytes": freed}


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _json_or_empty(text_value: str | None) -> dict:
    try:
        data = json.loads(text_value) if text_value else {}
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _yaml_or_none(text_value: str | None):
    try:
        return yaml.safe_load(text_value) if text_value else None
    except yaml.YAMLError:
        return None


def _first_paragraph(card: str) -> str:
    body = parse_card(card)[1] if card else ""
    for block in body.split("\n\n"):
        block = block.strip()
        if block and not block.startswith(("#", "|", "-", "_")):
            return block[:300]
    return ""
