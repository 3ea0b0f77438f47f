"""Content-addressed blob storage: a file is stored once under its sha256, whoever uploads it.

`put` streams into a temporary file beside the store while hashing, checks the declared size and sha256, and
only then renames it into place, so a blob that exists is always complete and correct.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from zoo_core.errors import ZooError

CHUNK = 1024 * 1024


class IntegrityError(ZooError):
    """A file whose bytes do not match its declared size or sha256."""


class LocalBlobStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256[2:]

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put(self, stream: BinaryIO | Iterable[bytes], size: int | None = None, sha256: str | None = None,
            limit: int | None = None, name: str = "file") -> tuple[str, int]:
        """Store a stream; verify it against `size`/`sha256` when given. Returns (sha256, size)."""
        digest, written = hashlib.sha256(), 0
        fd, tmp = tempfile.mkstemp(dir=self.root / "tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in _chunks(stream):
                    written += len(chunk)
                    if limit is not None and written > limit:
                        raise IntegrityError(f"{name}: larger than the upload limit of {limit} bytes")
                    digest.update(chunk)
                    out.write(chunk)
            actual = digest.hexdigest()
            if size is not None and written != size:
                raise IntegrityError(f"{name}: expected {size} bytes, received {written} (truncated or corrupt)")
            if sha256 is not None and actual != sha256.lower():
                raise IntegrityError(f"{name}: sha256 mismatch (declared {sha256}, received {actual})")
            target = self.path(actual)
            if target.exists():
                os.unlink(tmp)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, target)
            return actual, written
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

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

    def clear_tmp(self) -> None:
        shutil.rmtree(self.root / "tmp", ignore_errors=True)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)


def _chunks(stream: BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    if hasattr(stream, "read"):
        while chunk := stream.read(CHUNK):
            yield chunk
    else:
        yield from stream
