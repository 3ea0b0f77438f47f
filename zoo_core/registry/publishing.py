"""Publishing into the registry: storing files, assembling a version (from a folder, a file list or a Hub commit)
and making it visible in one transaction, with its card checked, metrics read and lineage linked."""

from __future__ import annotations

import base64
import json
import math
import re
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import yaml
from sqlalchemy.exc import IntegrityError as DbIntegrityError
from sqlmodel import Session, select

from zoo_core.errors import (
    CardError,
    ConflictError,
    ContentError,
    EntryNotFoundError,
    ForbiddenError,
    IntegrityError,
    StaleParentError,
    UploadTooLargeError,
    ZooError,
)
from zoo_core.registry import version_rows as rows
from zoo_core.registry.blobs import BlobWriter
from zoo_core.registry.cards import (
    check_alias_card,
    front_matter,
    has_yaml_aliases,
    missing_for_publication,
    parse_card,
)
from zoo_core.registry.columns import check_external_parent, check_metric_name, check_tags, fit, version_columns
from zoo_core.registry.models import Alias, Model, Version, utcnow
from zoo_core.registry.reads import Fixed, FixedCache
from zoo_core.registry.refs import check_alias, parse_ref
from zoo_core.registry.types import (
    ADMIN,
    FileSpec,
    VersionInfo,
    Viewer,
    check_limits,
    check_path,
    check_tree,
    empty_commit,
    manifest_commit,
)
from zoo_core.registry.uploads import lease_for, owner_of

# `import`: a model registered from outside (zoo import), its parent being the source it was imported from.
RELATIONS = ("finetune", "adapter", "feature-extraction", "quantized", "merge", "import")


class PublishingMixin:
    """The write side of `RegistryService` (which provides `engine`, `blobs`, `resolve` and the row helpers)."""

    def store_file(self, stream: BinaryIO | Iterable[bytes], path: str, size: int | None = None,
                   sha256: str | None = None, limit: int | None = None, viewer: Viewer = ADMIN,
                   owner: str | None = None) -> FileSpec:
        """Store one file's bytes (verified against size/sha256 when given) ahead of `publish`, as uploaded by
        `viewer` (which may then publish them; see uploads.py). The upload is leased before the blob becomes visible,
        so no gc takes it before the publish that follows. The administrator needs no lease to publish: it leases
        (for `GC_GRACE`) only under an `owner` name its push gives, and releases afterwards."""
        check_path(path)
        owner = owner or (None if viewer.admin else owner_of(viewer))
        lease = None if owner is None else lambda digest: self.record_upload(owner, digest, lease_for(viewer))
        digest, written = self.blobs.put(stream, size=size, sha256=sha256, limit=limit, name=path, lease=lease)
        return FileSpec(path, digest, written)

    def has_blob(self, sha256: str, viewer: Viewer = ADMIN) -> bool:
        """Whether `viewer` may publish these bytes without uploading them (they are stored, and it uploaded them
        or can read a version holding them); a blob that is there is touched, so that `gc` does not take it
        before the client's publish references it."""
        return not self.needs_upload(viewer, sha256)

    def open_upload(self, path: str, sha256: str, size: int | None = None, limit: int | None = None) -> BlobWriter:
        """Receive one file's bytes chunk by chunk (a streamed upload): `write` each chunk, then `commit()` checks
        them against `sha256` and `size` and stores them; nothing is stored on failure. `limit` bounds the size."""
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ZooError("the blob address must be a lowercase 64-hex sha256")
        check_path(path)
        if size is not None and limit is not None and size > limit:
            raise UploadTooLargeError(f"{path}: {size} bytes is larger than the upload limit of {limit} bytes")
        return self.blobs.writer(path, limit, size=size, sha256=sha256)

    def push_folder(self, folder: str | Path, model_ref: str, *, viewer: Viewer = ADMIN, status: str = "published",
                    parent: str | None = None, relation: str | None = None, visibility: str | None = None,
                    description: str | None = None, tags: list[str] | None = None,
                    aliases: list[str] | None = None) -> VersionInfo:
        """Publish a checkpoint folder as the next version of `model_ref` (`aliases` moved to it in the same
        transaction: see `publish`)."""
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise ZooError(f"'{folder}' is not a folder")
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        if not files:
            raise ZooError(f"'{folder}' holds no files")
        specs = []
        # the administrator's uploads need no permission, only protection from gc until published: leased under
        # this push's own name, released when it is done (a killed push's lease runs out after GC_GRACE)
        owner = f"(push {uuid.uuid4().hex})" if viewer.admin else None
        try:
            for path in files:
                with path.open("rb") as handle:
                    specs.append(self.store_file(handle, path.relative_to(folder).as_posix(),
                                                 size=path.stat().st_size, viewer=viewer, owner=owner))
            return self.publish(model_ref, specs, viewer=viewer, status=status, parent=parent, relation=relation,
                                visibility=visibility, description=description, tags=tags, aliases=aliases)
        finally:  # published (referenced now) or refused: its leases have done their work
            if owner is not None:
                self.release_uploads(owner, [s.sha256 for s in specs])

    def create_model(self, model_ref: str, viewer: Viewer = ADMIN, visibility: str | None = None) -> None:
        """Create an empty model (the Hub client's create_repo); ConflictError when it already exists."""
        ref = parse_ref(model_ref)
        if not viewer.can_write(ref.namespace):
            raise ForbiddenError(f"a token for namespace '{ref.namespace}' is needed to create {ref.model_id}")
        with Session(self.engine) as session:
            ns = self._namespace(session, ref.namespace)
            exists = ConflictError(f"model '{ref.model_id}' already exists")
            if session.exec(select(Model).where(Model.namespace_id == ns.id, Model.name == ref.name)).first():
                raise exists
            session.add(Model(namespace_id=ns.id, name=ref.name, visibility=visibility or "public"))
            try:
                session.commit()
            except DbIntegrityError:  # created by a concurrent request
                raise exists from None

    COMMIT_OPERATIONS = ("header", "file", "lfsFile", "deletedFile", "deletedFolder")

    def commit(self, model_ref: str, operations: Iterable[dict[str, Any]], *, viewer: Viewer = ADMIN
               ) -> VersionInfo:
        """A Hub commit to `main` becomes the next version: the files of `latest` (none yet for an empty model),
        changed by the commit's operations (huggingface_hub's NDJSON lines: `header`, `file` with its content
        inline, `lfsFile` naming bytes uploaded beforehand, `deletedFile`, `deletedFolder`), published atomically
        with the same card and token rules as `push`. As on the Hub: the model must exist (create_repo first), a
        deletion names files that exist, and the header's `parentCommit`, when given, must still be `main`. The
        header's summary and description are kept with the version as its message."""
        ref = parse_ref(model_ref)
        operations = list(operations)
        unknown = sorted({str(op.get("key")) for op in operations} - set(self.COMMIT_OPERATIONS))
        if unknown:
            raise ZooError(f"unknown commit operation(s) {', '.join(unknown)}; the zoo takes "
                           + ", ".join(self.COMMIT_OPERATIONS))
        for op in operations:
            check_operation(op)
        if not viewer.can_write(ref.namespace):  # before storing anything
            raise ForbiddenError(f"a token for namespace '{ref.namespace}' is needed to push to {ref.model_id}")
        summary = self.model_summary(ref.model_id, viewer)  # ModelNotFoundError: never created
        files = {}
        if summary["latest"] is not None:
            parent = self.resolve(f"{ref.model_id}@latest", viewer)
            files = {f["path"]: FileSpec(f["path"], f["sha256"], f["size"]) for f in parent.files}
        header: dict[str, Any] = {}
        for op in operations:
            key, value = op["key"], op.get("value") or {}
            if key == "header":
                header = value
            elif key == "file":
                content = value.get("content", "")
                data = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
                files[value["path"]] = self.store_file([data], value["path"], size=len(data), viewer=viewer)
            elif key == "lfsFile":  # uploaded beforehand (Git LFS batch API): named by sha256, checked by publish
                path, oid, size = value.get("path"), value.get("oid"), value.get("size")
                if value.get("algo", "sha256") != "sha256" or not isinstance(path, str) or not isinstance(size, int) \
                        or not isinstance(oid, str) or not re.fullmatch(r"[0-9a-f]{64}", oid):
                    raise ZooError("an lfsFile operation names its file by `path`, sha256 `oid` (64 lowercase hex) "
                                   "and integer `size`")
                files[path] = FileSpec(check_path(path), oid, size)
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise EntryNotFoundError(f"cannot delete '{value['path']}': {ref.model_id} has no such file")
            else:  # deletedFolder
                folder = value["path"].rstrip("/") + "/"
                kept = {p: f for p, f in files.items() if not p.startswith(folder)}
                if len(kept) == len(files):
                    raise EntryNotFoundError(f"cannot delete '{folder}': {ref.model_id} has no such folder")
                files = kept
        message = "\n\n".join(part for part in (str(header.get("summary") or "").strip(),
                                                 str(header.get("description") or "").strip()) if part)
        return self.publish(ref.model_id, list(files.values()), viewer=viewer, message=message or None,
                            expect_parent=header.get("parentCommit") or None)

    def _read_small(self, specs: dict[str, FileSpec], name: str) -> str | None:
        spec = specs.get(name)
        if spec is None or spec.size > 10 * 1024 * 1024:
            return None
        return b"".join(self.blobs.read_range(spec.sha256)).decode("utf-8", errors="replace")

    def publish(self, model_ref: str, files: list[FileSpec], *, viewer: Viewer = ADMIN, status: str = "published",
                parent: str | None = None, relation: str | None = None, visibility: str | None = None,
                description: str | None = None, tags: list[str] | None = None, message: str | None = None,
                expect_parent: str | None = None, aliases: list[str] | None = None) -> VersionInfo:
        """Make stored files the next version of `model_ref`, atomically: every file must be stored with its
        declared size, the writer needs a token for the namespace, and the card is checked (what it lacks is
        recorded on the version; the `required` card policy refuses to publish an incomplete one). Metrics, config,
        recipe and lineage are read from the files themselves. `message`: a commit message kept with the version;
        `expect_parent`: the commit `latest` must still be at (a Hub commit's parentCommit), checked in the same
        transaction (ConflictError with status 412 otherwise). `aliases`: moved to the new version in the same
        transaction, as `set_alias` would move them (a complete card needed but for `latest`, each move in the alias
        history): one request where a client made two, and no moment when the version is there but its alias not."""
        ref = parse_ref(model_ref)
        if ref.revision:
            raise ZooError(f"push to '{ref.model_id}', not to a revision: version numbers are assigned")
        if not viewer.can_write(ref.namespace):
            raise ForbiddenError(f"a token for namespace '{ref.namespace}' is needed to push to {ref.model_id}")
        if status not in ("draft", "published"):
            raise ZooError(f"a new version is draft or published, not '{status}'")
        if visibility not in (None, "public", "private"):
            raise ZooError(f"visibility is public or private, not '{visibility}'")
        aliases = sorted({check_alias(alias) for alias in aliases or ()})
        if aliases and status == "draft":
            raise ZooError(f"a draft cannot carry aliases ({', '.join(aliases)}): publish it, then point them at it")
        by_path = {f.path: f for f in files}
        if len(by_path) != len(files):
            raise ZooError("two files with the same name in one version")
        check_tree(by_path)
        bad = next((f for f in files if not isinstance(f.sha256, str) or not re.fullmatch(r"[0-9a-f]{64}", f.sha256)),
                   None)
        if bad is not None:  # the address names a path in the blob store: nothing else may reach it
            raise ZooError(f"file '{bad.path}': its sha256 must be 64 lowercase hex digits, not {bad.sha256!r}")
        denied = self.unpublishable(viewer, [f.sha256 for f in files])
        for f in files:  # every blob stored and of the declared size, before anything becomes visible
            check_path(f.path)
            # a blob the writer neither uploaded nor can read reads as missing: its hash is no key to it (nor is this
            # message an oracle of what is stored)
            actual = None if f.sha256 in denied else self.blobs.stored_size(f.sha256)
            if actual is None:
                raise ZooError(f"file '{f.path}' ({f.sha256}) was not uploaded: store its bytes first "
                               f"(store_file, or PUT /api/blobs/{f.sha256} on a server)")
            if actual != f.size:
                raise IntegrityError(f"file '{f.path}': declared {f.size} bytes, stored blob has {actual}")
            if not self.blobs.touch(f.sha256):  # in use again: gc's grace period now covers it until we commit
                raise ZooError(f"file '{f.path}' ({f.sha256}) is no longer stored (removed meanwhile): push it again")
        card = self._read_small(by_path, "README.md") or ""
        if has_yaml_aliases(front_matter(card)):
            raise ContentError(f"cannot publish {ref.model_id}: the model card's metadata uses YAML anchors or aliases "
                               "(&name / *name); write the values out")
        recipe_text = self._read_small(by_path, "recipe.yaml")
        if recipe_text and has_yaml_aliases(recipe_text):
            raise ContentError(f"cannot publish {ref.model_id}: recipe.yaml uses YAML anchors or aliases "
                               "(&name / *name); write the values out")
        parsed = parse_card(card) if card else ({}, "")  # once: the card's checks and columns share it
        missing = missing_for_publication(card, parsed)
        if status == "published" and missing and self.card_policy == "required":
            raise CardError(f"cannot publish {ref.model_id}: the model card lacks " + ", ".join(missing)
                            + " (this registry's card policy is `required`; push as a draft to keep it "
                              "unpublished)")
        if status == "draft" and (description is not None or tags is not None):
            raise ZooError("a draft cannot set the model's description or tags (everyone who can see the model sees "
                           "them): push it without them, and set them when it is published")
        meta = parsed[0]
        tags = check_tags(tags) if tags is not None else (check_tags(meta["tags"]) if meta.get("tags") else None)
        check_limits(len(files), description, tags)
        fit(description, Model.description, "the description")
        fit(message, Version.message, "the commit message")
        fit(card, Version.card, "the model card (README.md)")
        config = _json_or_empty(self._read_small(by_path, "config.json"))
        nested = config.get("transfer_zoo")  # a zoo checkpoint in a Hub library's layout
        config = nested if isinstance(nested, dict) else config
        recipe = yaml_or_none(recipe_text)
        columns = version_columns(meta, config, recipe)  # each a string that fits its column (columns.py)
        metrics = _metrics(self._read_small(by_path, "metrics.json"), ref.model_id)
        parents = self._lineage_parents(parent, relation, meta, recipe)
        check_alias_card(aliases, missing, self.card_policy, "this version's",  # before anything is written
                         "complete the card, or publish without the alias")
        for attempt in range(5):  # concurrent pushes race for the next number; the unique key decides
            try:
                return self._insert_version(ref, files, viewer, status, visibility, description, tags, card, meta,
                                            config, recipe, columns, metrics, parents, missing, message,
                                            expect_parent, aliases)
            except DbIntegrityError:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def _lineage_parents(self, parent, relation, meta, recipe) -> list[tuple[str, str]]:
        relation = relation or meta.get("base_model_relation") or "finetune"
        if relation not in RELATIONS:
            raise ZooError(f"relation '{relation}' is not one of {', '.join(RELATIONS)}")
        if parent:
            return [(check_external_parent(parent), relation)]
        resolved = (recipe or {}).get("resolved") if isinstance(recipe, dict) else None
        base = (resolved if isinstance(resolved, dict) else {}).get("base") or meta.get("base_model")
        if not base or base == "scratch" or str(base).startswith("scratch:"):
            return []
        return [(check_external_parent(str(base)), relation)]

    def _insert_version(self, ref, files, viewer, status, visibility, description, tags, card, meta, config,
                        recipe, columns, metrics, parents, missing, message, expect_parent, aliases) -> VersionInfo:
        # Everything read first, then written as plain statements (version_rows.py: no ORM unit of work). The
        # writer's lock (db.write_lock) is held until the session has closed: a failed write's rollback ends before
        # the next begins.
        with self.write_lock, Session(self.engine, expire_on_commit=False) as session:
            connection, now = session.connection(), utcnow()
            ns_id = rows.namespace_id(connection, ref.namespace) or self._namespace(session, ref.namespace).id
            model = rows.lock_model(connection, ns_id, ref.name)  # locked until the commit (version_rows.py)
            if expect_parent is not None:
                self._check_parent(session, ref.model_id, model, expect_parent)
            new_model = model is None
            if new_model:
                model = rows.insert_model(connection, ns_id, ref.name, visibility or "public", now)
            number = rows.next_number(connection, model.id)
            targets = [(self._parent_target(session, parent, viewer), relation) for parent, relation in parents]
            moved = (["latest"] + [a for a in aliases if a != "latest"]) if status == "published" else []
            states = rows.alias_states(connection, model.id, moved) if moved else {}
            commit = manifest_commit(ref.model_id, number, files)
            by_path = {f.path: f for f in files}
            version_id = rows.insert_version(connection, {
                "model_id": model.id, "number": number, "status": status, "commit": commit,
                "created_by": viewer.name, "created_at": now, "card": card, "card_data": meta, "config": config,
                "backbone": columns["backbone"], "family": columns["family"], "strategy": columns["strategy"],
                "library": columns["library"], "status_reason": None, "card_complete": not missing,
                "card_missing": missing, "message": message})
            rows.insert_children(connection, version_id, files, metrics, [
                {"parent_id": target[0].id if target else None, "parent_external": None if target else parent,
                 "relation": relation, "recipe": recipe}
                for (target, relation), (parent, _) in zip(targets, parents, strict=True)])
            changed = rows.model_as_values(model)
            if visibility:
                changed.visibility = visibility
            if status == "published":  # a draft is its namespace's own: the model's row shows nothing of it
                apply_to_model(changed, columns, description, tags, card)
            card_sha256 = by_path["README.md"].sha256 if "README.md" in by_path else None
            same_text = bool(moved) and not new_model and rows.same_text(connection, model, changed, card_sha256)
            rows.move_aliases(connection, model.id, version_id, number, states, viewer.name, now)
            changed_model = rows.update_model(connection, model, changed)
            rows.finish(connection, model.id, reindexed=changed_model or bool(moved) or new_model,
                        text_unchanged=same_text)
            # the files are referenced from here on, so gc's snapshot of references includes them
            gone = [f.path for f in files if not self.blobs.exists(f.sha256)]
            if gone:  # removed since the check above (a gc with no grace period): publish nothing
                raise ZooError(f"file '{gone[0]}' is no longer stored (removed while publishing); push it again")
            session.commit()
            if status != "draft":  # what its commit fixes, known already: reads of it need not query it (reads.py)
                self._remember_fixed(commit, files, metrics, parents, targets)
            # the answer from what was just written (no query): the same as `resolve` gives for it
            return VersionInfo(ref.model_id, number, status, commit, now.isoformat(),
                               viewer.name, columns["backbone"], columns["family"], columns["strategy"], dict(metrics),
                               sorted(moved),
                               files=sorted(({"path": f.path, "size": f.size, "sha256": f.sha256} for f in files),
                                            key=lambda f: f["path"]),
                               parents=[{"ref": target_ref(target) if target else parent, "relation": relation}
                                        for (target, relation), (parent, _) in zip(targets, parents, strict=True)],
                               card=card, size=sum(f.size for f in files), card_complete=not missing,
                               card_missing=list(missing), message=message)

    def _check_parent(self, session: Session, model_id: str, model: Model | None, expected: str) -> None:
        """A Hub commit names the commit it was built on: refused (412, as on the Hub) unless `latest` is still
        there (an empty model's `main` is `empty_commit`)."""
        latest = session.get(Alias, (model.id, "latest")) if model is not None else None
        current = session.get(Version, latest.version_id).commit if latest else empty_commit(model_id)
        if expected != current:
            raise StaleParentError(f"{model_id}: the commit was made on {expected[:12]}, but main is now at "
                                   f"{current[:12]}; pull the latest files and commit again")

    def _remember_fixed(self, commit: str, files: list[FileSpec], metrics: dict[str, float], parents, targets) -> None:
        cache = self.__dict__.get("_fixed_cache")
        if cache is None:
            cache = self._fixed_cache = FixedCache()
        listed = tuple(sorted(({"path": f.path, "size": f.size, "sha256": f.sha256} for f in files),
                              key=lambda f: f["path"]))
        external = tuple({"ref": parent, "relation": relation}
                         for (parent, relation), target in zip(parents, targets, strict=True) if target[0] is None)
        cache.put(commit, Fixed(listed, sum(f.size for f in files), dict(metrics), external,
                                any(target[0] is not None for target in targets)))

    def _parent_target(self, session, parent: str, viewer: Viewer) -> tuple[Version, str] | None:
        """A parent in this registry (its version, and `namespace/name`), or None for one outside it."""
        if parent.startswith("zoo:") or (":" not in parent and "/" in parent):
            pref = parse_ref(parent)
            model, _ = self._model(session, pref, viewer)  # a parent the pusher cannot see does not exist
            return self._version(session, model, pref, viewer), pref.model_id
        return None


def target_ref(target: tuple[Version, str]) -> str:
    version, model_id = target
    return f"{model_id}@{version.number}"


def check_operation(op: dict[str, Any]) -> None:
    """The fields of a commit operation the zoo reads, by type (a missing or mistyped one was once a 500): the
    header's texts and `parentCommit` (a commit id), a deletion's `path`. `file` and `lfsFile` are checked where
    their bytes are read."""
    value = op.get("value")
    if not isinstance(value, dict):
        raise ZooError(f"a commit's `{op.get('key')}` operation has an object `value`, not {value!r:.60}")
    if op["key"] == "header":
        for key in ("summary", "description"):
            if not isinstance(value.get(key) or "", str):
                raise ZooError(f"a commit header's `{key}` is a string, not {value[key]!r:.60}")
        parent = value.get("parentCommit")
        if parent is not None and not (isinstance(parent, str) and re.fullmatch(r"[0-9a-f]{40}", parent)):
            raise ZooError(f"a commit header's `parentCommit` is a commit id (40 lowercase hex), not {parent!r:.60}")
    elif op["key"] in ("deletedFile", "deletedFolder") and not isinstance(value.get("path"), str):
        raise ZooError(f"a `{op['key']}` operation names what it deletes by a string `path`")


def _json_or_empty(text_value: str | None) -> dict:
    try:
        data = json.loads(text_value) if text_value else {}
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _metrics(text_value: str | None, model_id: str) -> dict[str, float]:
    """metrics.json's numbers. Python's json reads `NaN` and `Infinity`, which no JSON answer can carry: refused,
    so that one push cannot break the catalog's pages and the Hub API for everyone."""
    metrics = {}
    for name, value in _json_or_empty(text_value).items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not math.isfinite(value):
            raise ContentError(f"cannot publish {model_id}: metrics.json gives '{name}' as {value}; metrics must be "
                               "finite numbers")
        metrics[check_metric_name(name)] = float(value)
    return metrics


def yaml_or_none(text_value: str | None):
    """A stored YAML file's data, or None when it is missing, malformed or uses aliases (never expanded)."""
    if not text_value or has_yaml_aliases(text_value):
        return None
    try:
        return yaml.safe_load(text_value)
    except yaml.YAMLError:
        return None


def apply_to_model(model: Model, columns: dict[str, str | None], description: str | None, tags: list[str] | None,
                   card: str) -> None:
    """What a published version says about its model: task, modality, license and tags from its card and config
    (explicit `description`/`tags` win), the card's first paragraph as the description while the model has none.
    Called when a version is published, at push or when its draft is published, never for a draft."""
    model.task = columns["task"] or model.task
    model.modality = columns["modality"] or model.modality
    model.license = columns["license"] or model.license
    if description is not None:
        model.description = description
    elif not model.description:
        model.description = _first_paragraph(card)
    model.tags = sorted(set(tags if tags is not None else (model.tags or [])))
    model.updated_at = utcnow()


def _first_paragraph(card: str) -> str:
    body = parse_card(card)[1] if card else ""
    for block in body.split("\n\n"):
        block = block.strip()
        if block and not block.startswith(("#", "|", "-", "_")):
            return block[:300]
    return ""
