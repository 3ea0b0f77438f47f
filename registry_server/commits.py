"""Reading a Hub commit (huggingface_hub's NDJSON operations) without holding it in memory: the body is read line by
line, each line bounded; a `file` operation's bytes (base64 inside its line) are stored at once as the writer's
upload and the operation becomes an `lfsFile` naming them, so the commit itself is a short list. The writer's token
is checked before any byte is read, and a commit that is refused leaves none of the blobs it brought behind.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Request

from zoo_core.errors import ForbiddenError, UploadTooLargeError, ZooError
from zoo_core.registry.service import RegistryService, Viewer
from zoo_core.registry.uploads import owner_of


def file_limit(request: Request) -> int:
    """The largest file a commit may carry inline: larger ones go through Git LFS (preupload says so)."""
    return min(request.app.state.lfs_threshold, request.app.state.max_upload)


@asynccontextmanager
async def received(request: Request, service: RegistryService, who: Viewer,
                   namespace: str) -> AsyncIterator[list[dict[str, Any]]]:
    """The commit's operations, inline files already stored; if the block raises (the commit is refused), the
    blobs this commit stored that were not there before are removed again."""
    if not who.can_write(namespace):  # before reading the body
        raise ForbiddenError(f"a token for namespace '{namespace}' is needed to push to {namespace}/...")
    limit = file_limit(request)
    line_cap = 4 * (limit // 3 + 1) + 64 * 1024  # the base64 of the largest inline file, and its JSON around it
    created: set[str] = set()
    try:
        operations = []
        async for line in _lines(request, line_cap, limit):
            try:
                op = json.loads(line)
            except ValueError as exc:
                raise ZooError(f"a commit is one JSON object a line: {exc}") from None
            if not isinstance(op, dict) or not isinstance(op.get("value", {}), dict):
                raise ZooError("a commit is one JSON object a line, each {'key': ..., 'value': {...}}")
            operations.append(_stored(op, service, who, limit, created) if op.get("key") == "file" else op)
        yield operations
    except BaseException:
        service.discard_uploads(owner_of(who), created)
        raise


async def _lines(request: Request, line_cap: int, limit: int) -> AsyncIterator[bytes]:
    buffer = bytearray()
    async for chunk in request.stream():
        buffer += chunk
        while (end := buffer.find(b"\n")) >= 0:
            line, buffer = bytes(buffer[:end]), buffer[end + 1:]
            if line.strip():
                yield line
        if len(buffer) > line_cap:
            raise UploadTooLargeError(f"a file inside a commit is at most {limit} bytes; larger files go through "
                                      "Git LFS (the zoo's preupload answers `lfs` for them)")
    if bytes(buffer).strip():
        yield bytes(buffer)


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
        raise UploadTooLargeError(f"file '{path}': {len(data)} bytes is larger than the {limit} bytes a commit "
                                  "carries inline; larger files go through Git LFS")
    digest = hashlib.sha256(data).hexdigest()
    existed = service.blobs.exists(digest)
    spec = service.store_file([data], path, size=len(data), sha256=digest, viewer=who)
    if not existed:
        created.add(digest)
    return {"key": "lfsFile", "value": {"path": spec.path, "algo": "sha256", "oid": spec.sha256, "size": spec.size}}
