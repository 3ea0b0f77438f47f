"""File downloads, for the zoo's API and the Hub's `/resolve/` alike: streamed from the blob store, with ETag
(the file's sha256) / If-None-Match and a single byte Range; a yanked version's files are not served."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from registry_server import deps
from registry_server.hub import hub_revision, hub_version
from registry_server.schemas import ERRORS
from zoo_core.errors import EntryNotFoundError, RequestError
from zoo_core.registry.blobs import LocalBlobStore
from zoo_core.registry.service import FileSpec, RegistryService, Viewer

router = APIRouter(responses=ERRORS)
Service = Depends(deps.service)
Reader = Depends(deps.viewer)
FILES = "/api/models/{namespace}/{name}/versions/{revision}/files/{path:path}"
RESOLVE = "/{namespace}/{name}/resolve/{revision}/{path:path}"


@router.get(FILES, summary="Download one file of a version (HEAD: its headers only)")
@router.head(FILES, include_in_schema=False)
def download(namespace: str, name: str, revision: str, path: str, request: Request, who: Viewer = Reader,
             service: RegistryService = Service) -> Response:
    found = service.find_file(namespace, name, revision, path, who)  # one query (file_lookup.py)
    spec = found[0] if found else service.open_file(f"{namespace}/{name}@{revision}", path, who)[0]
    return file_response(service, spec, request)


@router.get(RESOLVE, tags=["Hugging Face Hub API"],
            summary="Download one file (the Hub's resolve URL; HEAD: its headers only)")
@router.head(RESOLVE, include_in_schema=False)
def resolve_file(namespace: str, name: str, revision: str, path: str, request: Request, who: Viewer = Reader,
                 service: RegistryService = Service) -> Response:
    found = find_resolved(service, namespace, name, revision, path, who)
    if found is None:  # the full resolution says precisely what is missing
        revision, path = hub_revision(revision, path)
        info = hub_version(service, namespace, name, revision, who)
        entry = next((f for f in info.files if f["path"] == path), None)
        if entry is None:
            raise EntryNotFoundError(f"file '{path}' not found in {info.model_id}@{revision}", commit=info.commit)
        found = FileSpec(path, entry["sha256"], entry["size"]), info.commit
    return resolved_response(service, *found, request)


def find_resolved(service: RegistryService, namespace: str, name: str, revision: str, path: str,
                  who: Viewer) -> tuple[FileSpec, str] | None:
    """The file a Hub resolve URL names and its version's commit, in one query (file_lookup.py), when `who` may
    download it; None otherwise."""
    revision, path = hub_revision(revision, path)
    return service.find_file(namespace, name, "latest" if revision in ("main", "HEAD") else revision, path, who)


def resolved_response(service: RegistryService, spec: FileSpec, commit: str, request: Request) -> Response:
    response = file_response(service, spec, request)
    response.headers["X-Repo-Commit"] = commit  # the client's cache is keyed by it
    return response


def _unsatisfiable(requested: str, size: int) -> Response:
    """416, with the file's size (RFC 9110) and, like every error, a message."""
    status, headers, body = RequestError(f"Range '{requested[:100]}' is not one range within the file's {size} "
                                         "bytes (bytes=START-END, START-, or -LAST)", 416).wire()
    return JSONResponse(body, status_code=status, headers={**headers, "Content-Range": f"bytes */{size}"})


def content_disposition(name: str) -> str:
    """`attachment` with the file's name: headers are Latin-1, so a name beyond ASCII (`Ωmega.txt`, once a 500) goes
    in RFC 6266's `filename*` (UTF-8, percent-encoded), after an ASCII stand-in for clients that do not read it."""
    if name.isascii() and name.isprintable() and '"' not in name and "\\" not in name:
        return f'attachment; filename="{name}"'
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def file_response(service: RegistryService, spec: FileSpec, request: Request) -> Response:
    """Stream a stored file, honouring If-None-Match (304) and a single byte Range (206)."""
    etag = f'"{spec.sha256}"'
    headers = {"ETag": etag, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream",
               "Content-Disposition": content_disposition(Path(spec.path).name)}
    wanted = [t.strip() for t in request.headers.get("if-none-match", "").split(",")]
    if etag in wanted or "*" in wanted or f"W/{etag}" in wanted:  # RFC 9110: `*` matches any current file
        return Response(status_code=304, headers={"ETag": etag})
    start, end, status = 0, spec.size - 1, 200
    requested = request.headers.get("range")
    if requested and spec.size:
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", requested.strip())
        if not match or (not match.group(1) and not match.group(2)):
            return _unsatisfiable(requested, spec.size)
        if match.group(1):
            start = int(match.group(1))
            end = min(int(match.group(2)), spec.size - 1) if match.group(2) else spec.size - 1
        else:  # suffix: the last N bytes
            start = max(0, spec.size - int(match.group(2)))
        if start > end or start >= spec.size:
            return _unsatisfiable(requested, spec.size)
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{spec.size}"
    headers["Content-Length"] = str(end - start + 1 if spec.size else 0)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    if spec.size and type(service.blobs) is LocalBlobStore:  # a file on this disk: read it in large pieces
        return LocalFileResponse(service.blobs.path(spec.sha256), start, end, status_code=status, headers=headers)
    body = service.read(spec, start, end) if spec.size else iter([b""])
    return StreamingResponse(body, status_code=status, headers=headers)


ZEROCOPY = "http.response.zerocopysend"  # the ASGI extension (offered by zoo serve's protocol: zerocopy.py)


class LocalFileResponse(Response):
    """Bytes start..end of a local file: through the ASGI zero-copy extension where the server offers it (zoo serve
    does), else read with os.pread in PIECE-sized reads off the event loop. Measured
    against nginx on the same file: StreamingResponse over 1 MiB chunks of a generator reached a third of its
    throughput; large reads and one thread hop per piece close most of that gap."""

    PIECE = 8 * 1024 * 1024

    def __init__(self, path: Path, start: int, end: int, status_code: int, headers: dict[str, str]):
        super().__init__(status_code=status_code, headers=headers)
        self.path, self.start, self.end = path, start, end

    async def __call__(self, scope, receive, send) -> None:
        import anyio

        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        if ZEROCOPY in scope.get("extensions", {}):  # zoo serve's protocol: os.sendfile, no byte through Python
            with open(self.path, "rb") as file:
                await send({"type": ZEROCOPY, "file": file, "offset": self.start, "count": self.end - self.start + 1,
                            "more_body": False})
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            offset = self.start
            while offset <= self.end:
                size = min(self.PIECE, self.end - offset + 1)
                piece = await anyio.to_thread.run_sync(os.pread, fd, size, offset)
                if not piece:
                    break
                offset += len(piece)
                await send({"type": "http.response.body", "body": piece, "more_body": offset <= self.end})
        finally:
            os.close(fd)
        if offset <= self.end:  # the file was shorter than recorded: end the body (the client sees it short)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
