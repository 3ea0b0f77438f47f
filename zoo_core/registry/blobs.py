"""Content-addressed blob storage: a file is stored once under its sha256, whoever uploads it.

Two backends with one interface: a local directory (the default) and an S3-compatible bucket
(`s3://bucket/prefix`, through boto3; `ZOO_S3_ENDPOINT_URL` for MinIO, moto or other S3-compatible servers).
Writes stream into a local temporary file while hashing, are checked against the declared size and sha256, and
only then become the blob (a rename, or an upload), so a blob that exists is always complete and correct.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # Windows: a file open for writing cannot be deleted there anyway
    fcntl = None

from zoo_core.errors import IntegrityError, UploadTooLargeError
from zoo_core.registry.group_sync import GroupSync
from zoo_core.settings import get_settings

CHUNK = 1024 * 1024
TMP_MIN_AGE = 2.0  # seconds; see clear_tmp
__all__ = ["IntegrityError", "LocalBlobStore", "S3BlobStore", "open_blob_store"]  # IntegrityError: its old home


class LocalBlobStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        self._folders: set[str] = set()  # blob folders (sha256/ab) known to exist: a system call less a store
        self._base = str(self.root / "sha256")
        self.renames = GroupSync(str(self.root))  # syncs renames, shared by concurrent writers (group_sync.py)

    def path(self, sha256: str) -> Path:
        return Path(self._file(sha256))

    def _file(self, sha256: str) -> str:
        """`path` as a string: a publish asks for each of its files' blobs several times, and building pathlib
        objects cost it more than the system calls themselves."""
        return f"{self._base}/{sha256[:2]}/{sha256[2:]}"

    def exists(self, sha256: str) -> bool:
        return os.path.isfile(self._file(sha256))

    def writer(self, name: str = "file", limit: int | None = None, size: int | None = None,
               sha256: str | None = None) -> BlobWriter:
        """A blob being written chunk by chunk (for async streams); `commit` verifies it against `size` and
        `sha256` (when given) and stores it."""
        return BlobWriter(self, name, limit, size, sha256)

    def put(self, stream: BinaryIO | Iterable[bytes], size: int | None = None, sha256: str | None = None,
            limit: int | None = None, name: str = "file", lease: Callable[[str], None] | None = None
            ) -> tuple[str, int]:
        """Store a stream; verify it against `size`/`sha256` when given. Returns (sha256, size). `lease(sha256)`
        runs once the bytes are verified, before the blob is visible (see `BlobWriter.commit`)."""
        with self.writer(name, limit) as writer:
            for chunk in _chunks(stream):
                writer.write(chunk)
            return writer.commit(size, sha256, lease=lease)

    def size(self, sha256: str) -> int:
        return os.stat(self._file(sha256)).st_size

    def stored_size(self, sha256: str) -> int | None:
        """The blob's size, or None when it is not stored (`exists` and `size` in one look)."""
        try:
            return os.stat(self._file(sha256)).st_size
        except FileNotFoundError:
            return None

    def _store(self, tmp: str, sha256: str, fd: int) -> None:
        """Make a verified temporary file (`tmp`, open as `fd`) the blob `sha256` (an existing one is touched: it is
        in use again)."""
        target = self._file(sha256)
        if self.touch(sha256):  # already stored, and now safe from gc's grace period
            os.unlink(tmp)
            # its writer may still be waiting for the sync of its rename (or saw it fail): this upload's answer
            # must not come before it
            self.renames.sync(os.path.dirname(target))
            return
        if sha256[:2] not in self._folders:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            self._folders.add(sha256[:2])
        # Durable before a version can name it: the bytes reach the disk before the rename, and the rename before
        # the publish's commit. Without both, a power loss or an OS crash could leave a committed version whose blob
        # is empty (the rename kept, the data not yet written back) or missing (the rename lost). The bytes are
        # synced by each writer through its own descriptor (no lock: concurrent fsyncs share the file system's
        # journal commits); the rename is synced in rounds shared by every writer waiting (group_sync.py).
        os.fsync(fd)
        try:
            os.replace(tmp, target)
        except FileNotFoundError:  # its folder removed meanwhile (by hand): made again
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(tmp, target)
        self.renames.sync(os.path.dirname(target))

    def open(self, sha256: str) -> BinaryIO:
        return self.path(sha256).open("rb")

    def read_range(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes start..end (inclusive), streamed."""
        with self.open(sha256) as handle:
            handle.seek(start)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                chunk = handle.read(CHUNK if remaining is None else min(CHUNK, remaining))
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def all(self) -> Iterator[str]:
        base = self.root / "sha256"
        if base.is_dir():
            for prefix in base.iterdir():
                for blob in prefix.iterdir():
                    yield prefix.name + blob.name

    def delete(self, sha256: str) -> int:
        path = self.path(sha256)
        size = path.stat().st_size
        path.unlink()
        return size

    def touch(self, sha256: str) -> bool:
        """Mark the blob as just used, and say whether it is (still) there: `gc` leaves blobs younger than its grace
        period alone, so a publish that will reference this blob (or a client that was told it need not upload it)
        is not robbed of it. The touch holds a shared lock on the blob, and gc deletes only under an exclusive one
        after reading the age (`delete_unused`): a touch lands either before gc looks (gc then keeps the blob) or
        after it deleted it (the touch then says False); there is no moment in between."""
        path = self._file(sha256)
        for _ in range(100):  # (a replacement is a rare race; each retry opens the file now at the name)
            with _locked(path, exclusive=False) as fd:
                if fd is not None:
                    os.utime(path)
                    return True
            # not there, or deleted while we waited for the lock; or replaced: two uploads of the same bytes at once
            # both rename onto its name, and the file one of them touched may be the other's by now (same bytes)
            if not os.path.exists(path):
                return False
        return False

    def delete_unused(self, sha256: str, grace: float, held: Callable[[str], bool]) -> int | None:
        """gc's delete: the blob, unless it is younger than `grace` seconds or `held(sha256)` (a version or a live
        upload holds it), both read under an exclusive lock (see `touch`); its size, or None when kept."""
        path = self.path(sha256)
        with _locked(path, exclusive=True) as fd:
            if fd is None:  # not there, replaced, or being touched right now: in use
                return None
            stat = os.fstat(fd)
            if time.time() - stat.st_mtime <= grace or held(sha256):
                return None
            path.unlink()
            return stat.st_size

    def age(self, sha256: str) -> float:
        """Seconds since the blob was stored or last touched."""
        return time.time() - self.path(sha256).stat().st_mtime

    def clear_tmp(self, older_than: float = 0.0) -> int:
        """Remove uploads that stopped more than `older_than` seconds ago (killed or abandoned). A live writer holds
        a lock on its file (released by the kernel when its process dies), so one in flight is never taken, however
        slow its client or short `older_than`. A file is locked a moment after it is created, so none younger than
        `TMP_MIN_AGE` is taken."""
        older_than = max(older_than, TMP_MIN_AGE)
        removed = 0
        for tmp in (self.root / "tmp").iterdir():
            try:
                if time.time() - tmp.stat().st_mtime <= older_than:
                    continue
                if tmp.is_dir():
                    shutil.rmtree(tmp)
                else:
                    with tmp.open("rb") as handle:
                        if fcntl is not None:  # BlockingIOError: still being written
                            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        tmp.unlink()
                removed += 1
            except (FileNotFoundError, BlockingIOError, PermissionError):  # finished meanwhile, or in flight
                pass
        return removed


@contextlib.contextmanager
def _locked(path: Path | str, exclusive: bool) -> Iterator[int | None]:
    """The blob's file descriptor, locked (shared, waiting; or exclusive, not waiting) and still the file at `path`;
    None when it is missing, was replaced while we waited, or (exclusive) someone holds a lock on it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield None
        return
    try:
        yield fd if _lock(fd, exclusive) and _same_file(fd, path) else None
    finally:
        os.close(fd)


def _lock(fd: int, exclusive: bool) -> bool:
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX | fcntl.LOCK_NB) if exclusive else fcntl.LOCK_SH)
        return True
    except BlockingIOError:
        return False


def _same_file(fd: int, path: Path | str) -> bool:
    """Whether `path` still names the file open as `fd` (not deleted, nor replaced, meanwhile)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_ino, named.st_dev) == (held.st_ino, held.st_dev)


class S3BlobStore(LocalBlobStore):
    """Blobs in an S3-compatible bucket under `prefix/sha256/ab/cdef...`; `tmp_root` holds uploads in flight."""

    def __init__(self, url: str, tmp_root: str | Path, endpoint_url: str | None = None):
        import boto3

        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.client = boto3.client("s3", endpoint_url=endpoint_url or get_settings().s3_endpoint_url)
        self.root = Path(tmp_root)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        self._base = str(self.root / "sha256")  # (no blob is kept there: `path` names where one would be)

    def key(self, sha256: str) -> str:
        return "/".join(p for p in (self.prefix, "sha256", sha256[:2], sha256[2:]) if p)

    def exists(self, sha256: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))
            return True
        except ClientError:
            return False

    def size(self, sha256: str) -> int:
        return self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))["ContentLength"]

    def stored_size(self, sha256: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            return self.size(sha256)
        except ClientError:
            return None

    def _store(self, tmp: str, sha256: str, fd: int) -> None:
        try:
            if not self.touch(sha256):  # touched when already stored
                self.client.upload_file(tmp, self.bucket, self.key(sha256))  # multipart for large files
        finally:
            os.unlink(tmp)

    def open(self, sha256: str) -> BinaryIO:
        return self.client.get_object(Bucket=self.bucket, Key=self.key(sha256))["Body"]

    def read_range(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        byte_range = f"bytes={start}-{'' if end is None else end}"
        body = self.client.get_object(Bucket=self.bucket, Key=self.key(sha256), Range=byte_range)["Body"]
        yield from body.iter_chunks(CHUNK)

    def all(self) -> Iterator[str]:
        prefix = "/".join(p for p in (self.prefix, "sha256") if p) + "/"
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"][len(prefix):].replace("/", "")

    def delete(self, sha256: str) -> int:
        size = self.size(sha256)
        self.client.delete_object(Bucket=self.bucket, Key=self.key(sha256))
        return size

    def touch(self, sha256: str) -> bool:
        from botocore.exceptions import ClientError

        key = {"Bucket": self.bucket, "Key": self.key(sha256)}
        try:  # a copy onto itself renews LastModified (managed: > 5 GB too)
            self.client.copy(key, self.bucket, key["Key"], ExtraArgs={"MetadataDirective": "REPLACE",
                                                                      "Metadata": {"touched": str(time.time())}})
            return True
        except ClientError:
            return False

    def delete_unused(self, sha256: str, grace: float, held: Callable[[str], bool]) -> int | None:
        """As the local store's, without its lock: S3 has none, so a touch racing this delete can still lose."""
        from botocore.exceptions import ClientError

        try:
            if self.age(sha256) <= grace or held(sha256):
                return None
            return self.delete(sha256)
        except ClientError:
            return None

    def age(self, sha256: str) -> float:
        modified = self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))["LastModified"]
        return time.time() - modified.timestamp()


def open_blob_store(location: str | Path, tmp_root: str | Path) -> LocalBlobStore:
    """`s3://bucket/prefix` or a local folder."""
    if str(location).startswith("s3://"):
        return S3BlobStore(str(location), tmp_root)
    return LocalBlobStore(location)


class BlobWriter:
    """Writes into a temporary file beside the store while hashing; nothing is visible before `commit`."""

    def __init__(self, store: LocalBlobStore | S3BlobStore, name: str, limit: int | None,
                 size: int | None = None, sha256: str | None = None):
        self.store, self.name, self.limit = store, name, limit
        self.expected_size, self.expected_sha256 = size, sha256
        self.digest, self.size, self.stored = hashlib.sha256(), 0, False
        fd, self.tmp = tempfile.mkstemp(dir=store.root / "tmp")
        if fcntl is not None:  # in flight until closed: gc's clear_tmp leaves it alone (a fresh file: no wait)
            fcntl.flock(fd, fcntl.LOCK_EX)
        self.handle = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.limit is not None and self.size > self.limit:
            raise UploadTooLargeError(f"{self.name}: larger than the upload limit of {self.limit} bytes")
        self.digest.update(chunk)
        self.handle.write(chunk)

    def commit(self, size: int | None = None, sha256: str | None = None,
               lease: Callable[[str], None] | None = None) -> tuple[str, int]:
        """Verify and store the bytes. `lease(sha256)` runs between the two: an upload lease recorded there exists
        before the blob is visible, so a gc that lists the blob sees its lease too (gc lists blobs first)."""
        size = self.expected_size if size is None else size
        sha256 = self.expected_sha256 if sha256 is None else sha256
        self.handle.flush()  # kept open, and so locked, until the blob is stored
        actual = self.digest.hexdigest()
        if size is not None and self.size != size:
            raise IntegrityError(f"{self.name}: expected {size} bytes, received {self.size} (truncated or corrupt)")
        if sha256 is not None and actual != sha256.lower():
            raise IntegrityError(f"{self.name}: sha256 mismatch (declared {sha256}, received {actual})")
        if lease is not None:
            lease(actual)
        self.store._store(self.tmp, actual, self.handle.fileno())
        self.stored = True
        self.handle.close()
        return actual, self.size

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.handle.close()
        if not self.stored:  # (stored: the temporary file became the blob, or was removed as a duplicate)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)


def _chunks(stream: BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    if hasattr(stream, "read"):
        while chunk := stream.read(CHUNK):
            yield chunk
    else:
        yield from stream
