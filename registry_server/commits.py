"""Reading a Hub commit (huggingface_hub's NDJSON operations) without holding it in memory: the body is read line by
line; a `file` operation's bytes (base64 inside its line) are decoded into the blob store as they arrive, recorded
as the writer's upload, and the operation becomes an `lfsFile` naming them, so the commit itself is a short list.
The writer's token is checked before any byte is read, and a commit that is refused leaves none of the blobs it
brought behind.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from zoo_core.errors import ForbiddenError, UploadTooLargeError, ZooError
from zoo_core.registry.service import RegistryService, Viewer, check_path
from zoo_core.registry.uploads import owner_of


def file_limit(request: Request) -> int:
    """The largest file a commit may carry inline: larger ones go through Git LFS (preupload says so)."""
    return min(request.app.state.lfs_threshold, request.app.state.max_upload)


# How every huggingface_hub version writes a file inside a commit (json.dumps, content first): such a line's base64 is
# decoded and stored as it arrives. Any other line is read whole, within `line_cap`.
INLINE = b'{"key": "file", "value": {"content": "'


@asynccontextmanager
async def received(request: Request, service: RegistryService, who: Viewer,
                   namespace: str) -> AsyncIterator[list[dict[str, Any]]]:
    """The commit's operations, inline files already stored; if the block raises (the commit is refused), the
    blobs this commit stored that were not there before are removed again."""
    if not who.can_write(namespace):  # before reading the body
        raise ForbiddenError(f"a token for namespace '{namespace}' is needed to push to {namespace}/...")
    body = _Body(request, service, who, file_limit(request))
    try:
        yield [op async for op in body.operations()]
    except BaseException:
        with anyio.CancelScope(shield=True):  # also when the client went away (the request was cancelled)
            await run_in_threadpool(service.discard_uploads, owner_of(who), body.created)
        raise


class _Body:
    def __init__(self, request: Request, service: RegistryService, who: Viewer, limit: int):
        self.chunks, self.buffer = request.stream().__aiter__(), bytearray()
        self.service, self.who, self.limit = service, who, limit
        self.line_cap = 4 * (limit // 3 + 1) + 64 * 1024  # the base64 of the largest inline file, and its JSON
        self.created: set[str] = set()  # blobs stored by this commit that were not there before

    async def _fill(self) -> bool:
        try:
            self.buffer += await self.chunks.__anext__()
            return True
        except StopAsyncIteration:
            return False

    async def _line(self, cap: int) -> bytes:
        """The rest of the current line (without its newline)."""
        while (end := self.buffer.find(b"\n")) < 0:
            if len(self.buffer) > cap:
                raise _too_big(self.limit)
            if not await self._fill():
                end = len(self.buffer)
                break
        line = bytes(self.buffer[:end])
        del self.buffer[:end + 1]
        return line

    async def operations(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            while len(self.buffer) < len(INLINE) and b"\n" not in self.buffer and await self._fill():
                pass
            if not self.buffer:
                return
            if self.buffer.startswith(INLINE):
                del self.buffer[:len(INLINE)]
                yield await self._streamed_file()
                continue
            line = await self._line(self.line_cap)
            if line.strip():
                op = _parsed(line)
                # _stored writes to the database: in the thread pool, as every database call of an async route
                yield await run_in_threadpool(_stored, op, self.service, self.who, self.limit, self.created) \
                    if op.get("key") == "file" else op

    async def _streamed_file(self) -> dict[str, Any]:
        """An inline file's base64, decoded into the blob store as it arrives (a 4-character remainder waits for
        the next chunk); then the rest of its line names the file."""
        pending = b""
        with self.service.blobs.writer("a file inside the commit", self.limit) as blob:
            while True:
                quote = self.buffer.find(b'"')
                data = pending + bytes(self.buffer if quote < 0 else self.buffer[:quote])
                cut = len(data) - len(data) % 4
                try:
                    blob.write(base64.b64decode(data[:cut], validate=True))
                except binascii.Error as exc:
                    raise ZooError(f"a file's content in a commit must be base64 ({exc})") from None
                except UploadTooLargeError:
                    raise _too_big(self.limit) from None
                pending = data[cut:]
                if quote >= 0:
                    del self.buffer[:quote]
                    break
                self.buffer.clear()
                if not await self._fill():
                    raise ZooError("the commit ends inside a file's content")
            if pending:
                raise ZooError("a file's content in a commit must be base64 (its length is not a multiple of 4)")
            op = _parsed(INLINE + await self._line(64 * 1024))
            path = op["value"].get("path")
            if op["value"].get("encoding") != "base64" or not isinstance(path, str):
                raise ZooError("a `file` operation whose content comes first is base64 with a string `path`")
            check_path(path)
            existed = self.service.blobs.exists(blob.digest.hexdigest())
            # the lease is a database write: in the thread pool, not on the event loop
            digest, size = await run_in_threadpool(
                blob.commit, lease=lambda sha256: self.service.record_upload(owner_of(self.who), sha256))
        if not existed:
            self.created.add(digest)
        return {"key": "lfsFile", "value": {"path": path, "algo": "sha256", "oid": digest, "size": size}}


def _too_big(limit: int) -> UploadTooLargeError:
    return UploadTooLargeError(f"a file inside a commit is at most {limit} bytes; larger files go through Git LFS "
                               "(the zoo's preupload answers `lfs` for them)")


def _parsed(line: bytes) -> dict[str, Any]:
    try:
        op = json.loads(line)
    except ValueError as exc:
        raise ZooError(f"a commit is one JSON object a line: {exc}") from None
    if not isinstance(op, dict) or not isinstance(op.get("value", {}), dict):
        raise ZooError("a commit is one JSON object a line, each {'key': ..., 'value': {...}}")
    return op


def _stored(op: dict[str, Any], service: RegistryService, who: Viewer, limit: int, created: set[str]) -> dict:
    value = op.get("value") or {}
    path, content = value.get("path"), value.get("content", "")
    if not isinstance(path, str) or not isinstance(content, str):
        raise ZooError("a `file` operation has a string `path` and `content`")
    try:
        data = base64.b64decode(content, validate=True) if value.get("encoding") == "base64" else content.encode()
    except binascii.Error as exc:
        raise ZooError(f"file '{path}': its content is not valid base64 ({exc})") from None
    if len(data) > limit:
        raise _too_big(limit)
    digest = hashlib.sha256(data).hexdigest()
    existed = service.blobs.exists(digest)
    spec = service.store_file([data], path, size=len(data), sha256=digest, viewer=who)
    if not existed:
        created.add(digest)
    return {"key": "lfsFile", "value": {"path": spec.path, "algo": "sha256", "oid": spec.sha256, "size": spec.size}}
