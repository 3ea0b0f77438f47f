"""Who may publish which bytes. The blob store is content-addressed and shared, so knowing a file's sha256 must not
be enough to publish it: a writer may publish a blob it uploaded itself (an upload lasts `UPLOAD_LEASE`), or one
that a version it can download already holds (re-pushing a model it can read). Everything else must be uploaded,
which proves the writer has the bytes; equal bytes are still stored once.

An upload is recorded per owner (the namespace of the writer's token) and sha256, with an expiry; `gc` keeps every
blob with a live upload however old it is, and forgets expired uploads. An embedded push (the administrator's)
leases its uploads too, under its own name, for `GC_GRACE`, and releases them once published or refused: it needs
no permission, but a `zoo gc --grace 0` beside it must not take its blobs before the publish references them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import and_, bindparam, delete, or_
from sqlalchemy.exc import IntegrityError as DbIntegrityError
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, select

from zoo_core.registry.models import FileEntry, Model, Namespace, Upload, Version, utcnow
from zoo_core.registry.types import GC_GRACE, UPLOAD_LEASE, Viewer


def owner_of(viewer: Viewer) -> str:
    """The name uploads are recorded under: the token's namespace (tokens write one namespace each). The
    administrator's are named `(push ...)` by its push (no namespace can have such a name)."""
    return viewer.name or ",".join(sorted(viewer.namespaces)) or "anonymous"


def lease_for(viewer: Viewer) -> float:
    """How long an upload by `viewer` is kept for its publish: a day for tokens (Git LFS uploads come long before
    their commit), gc's grace period for the administrator (whose push publishes right after)."""
    return GC_GRACE if viewer.admin else UPLOAD_LEASE


def _upsert(dialect: str):
    """The lease's upsert, built once per dialect (building it cost as much as running it)."""
    if dialect == "sqlite":  # imported here: the PostgreSQL dialect alone costs a CLI command 0.1 s to import
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    statement = insert(Upload.__table__)
    return statement.on_conflict_do_update(index_elements=["owner", "sha256"],
                                           set_={"expires_at": statement.excluded.expires_at})


_UPSERTS: dict = {}
# the writer's live uploads among some blobs (every publish asks), built once
OWNED = select(Upload.__table__.c.sha256).where(
    Upload.__table__.c.owner == bindparam("owner"), Upload.__table__.c.sha256.in_(bindparam("wanted", expanding=True)),
    Upload.__table__.c.expires_at > bindparam("now"))


class UploadsMixin:
    """Upload ownership for `RegistryService` (which provides `engine` and `blobs`)."""

    def record_upload(self, owner: str, sha256: str, lease: float = UPLOAD_LEASE) -> None:
        """`owner` uploaded the blob `sha256` (verified): it may publish it, and gc keeps it, for `lease` seconds.
        One statement: inserted, or renewed when the owner uploaded the same bytes before (also concurrently)."""
        now = utcnow()
        expires = now + timedelta(seconds=lease)
        dialect = self.engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):  # no portable upsert: the row read, then written
            return self._record_upload_orm(owner, sha256, expires)
        statement = _UPSERTS.get(dialect)
        if statement is None:
            statement = _UPSERTS[dialect] = _upsert(dialect)
        with self.write_lock, self.engine.connect() as connection:
            connection.execute(statement, {"owner": owner, "sha256": sha256, "created_at": now, "expires_at": expires})
            connection.commit()

    def _record_upload_orm(self, owner: str, sha256: str, expires) -> None:
        for _ in range(3):  # two uploads of the same bytes by one owner race on the unique key: renew instead
            with Session(self.engine) as session:
                row = session.exec(select(Upload).where(Upload.owner == owner, Upload.sha256 == sha256)).first()
                if row is None:
                    row = Upload(owner=owner, sha256=sha256, expires_at=expires)
                row.expires_at = expires
                session.add(row)
                try:
                    session.commit()
                    return
                except (DbIntegrityError, StaleDataError):  # inserted, or forgotten, by someone else meanwhile
                    continue

    def unpublishable(self, viewer: Viewer, digests: Iterable[str]) -> set[str]:
        """The blobs among `digests` that `viewer` may not publish: neither uploaded by it (a live upload) nor held
        by a version it can download (public or its own, not yanked). Says nothing about whether a blob is stored."""
        wanted = set(digests)
        if viewer.admin or not wanted:
            return set()
        with self.engine.connect() as connection:  # (a connection, not a session: every publish asks)
            owned = set(connection.execute(OWNED, {"owner": owner_of(viewer), "wanted": sorted(wanted),
                                                   "now": utcnow()}).scalars())
            rest = wanted - owned
            if rest:
                readable = or_(and_(Model.visibility == "public", Version.status != "draft"),  # drafts: their own
                               Namespace.name.in_(sorted(viewer.namespaces)))
                rest -= set(connection.execute(
                    select(FileEntry.sha256).distinct().join(Version, FileEntry.version_id == Version.id)
                    .join(Model, Version.model_id == Model.id).join(Namespace, Model.namespace_id == Namespace.id)
                    .where(FileEntry.sha256.in_(rest), Version.status != "yanked", readable)).scalars())
        return rest

    def needs_upload(self, viewer: Viewer, sha256: str) -> bool:
        """Whether `viewer` must upload these bytes before publishing them: yes unless they are stored and it may
        publish them. Bytes it need not upload are touched (and its upload renewed), so gc keeps them meanwhile."""
        if not self.blobs.exists(sha256) or self.unpublishable(viewer, [sha256]):
            return True
        if not self.blobs.touch(sha256):  # collected since: upload it again
            return True
        if not viewer.admin:
            with Session(self.engine) as session:
                owned = session.exec(select(Upload).where(Upload.owner == owner_of(viewer),
                                                          Upload.sha256 == sha256)).first()
            if owned is not None:
                self.record_upload(owner_of(viewer), sha256)
        return False

    def release_uploads(self, owner: str, digests: Iterable[str]) -> None:
        """Forget `owner`'s uploads of `digests` (its push is done): gc's grace period alone protects them now."""
        digests = set(digests)
        if digests:
            with Session(self.engine) as session:
                session.exec(delete(Upload).where(Upload.owner == owner, Upload.sha256.in_(digests)))
                session.commit()

    def held(self, sha256: str) -> bool:
        """Whether a version references the blob or a live upload holds it, read now."""
        with Session(self.engine) as session:
            return session.exec(select(FileEntry.id).where(FileEntry.sha256 == sha256).limit(1)).first() is not None \
                or session.exec(select(Upload.id).where(Upload.sha256 == sha256,
                                                        Upload.expires_at > utcnow()).limit(1)).first() is not None

    def leased_blobs(self) -> set[str]:
        """Blobs with a live upload (gc keeps them); expired uploads are forgotten on the way."""
        with Session(self.engine) as session:
            session.exec(delete(Upload).where(Upload.expires_at <= utcnow()))
            session.commit()
            return set(session.exec(select(Upload.sha256).distinct()).all())

    def discard_uploads(self, owner: str, created: Iterable[str]) -> None:
        """Undo the uploads of a refused commit: `created` are blobs it stored that were not there before. Each is
        deleted unless a version references it or someone else's upload holds it (equal bytes uploaded meanwhile)."""
        created = set(created)
        if not created:
            return
        with Session(self.engine) as session:
            session.exec(delete(Upload).where(Upload.owner == owner, Upload.sha256.in_(created)))
            session.commit()
            kept = set(session.exec(select(FileEntry.sha256).where(FileEntry.sha256.in_(created))).all())
            kept |= set(session.exec(select(Upload.sha256).where(Upload.sha256.in_(created))).all())
        for sha256 in created - kept:
            with contextlib.suppress(FileNotFoundError):
                self.blobs.delete(sha256)
