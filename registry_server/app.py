"""The registry server: the registry service as a JSON API under /api (OpenAPI docs at /docs).

Anonymous users read public models; writing needs `Authorization: Bearer <token>` for the model's namespace;
private models answer 404 to everyone else. Uploads are two-phase and streamed: `PUT /api/blobs/{sha256}` per file
(verified against its size and sha256, bounded memory), then `POST /api/models/{ns}/{name}/versions` publishes
them atomically. Downloads stream, with Range and ETag / If-None-Match.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from registry_server.hf import HubError, create_router, list_models_response, model_info, resolve_version
from registry_server.web import create_templates, create_web_router, templates_dir
from zoo_core import __version__
from zoo_core.errors import UnknownNameError, ZooError
from zoo_core.registry.blobs import IntegrityError
from zoo_core.registry.queries import parse_metric
from zoo_core.registry.service import (
    AuthError,
    CardError,
    FileSpec,
    ModelNotFoundError,
    NotFoundError,
    RegistryService,
    RevisionNotFoundError,
    Viewer,
    check_path,
)
from zoo_core.settings import get_settings


class FileIn(BaseModel):
    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class VersionIn(BaseModel):
    files: list[FileIn]
    status: Literal["published", "draft"] = "published"
    parent: str | None = None
    relation: str | None = None
    visibility: Literal["public", "private"] | None = None
    description: str | None = None


class AliasIn(BaseModel):
    alias: str
    version: int


class StatusIn(BaseModel):
    status: Literal["published", "deprecated", "yanked"]
    reason: str | None = None


def create_app(registry: str | Path | None = None, database_url: str | None = None,
               max_upload: int | None = None) -> FastAPI:
    settings = get_settings()
    root = Path(registry or settings.registry).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    url = database_url or settings.database_url or f"sqlite:///{root / 'registry.db'}"
    service = RegistryService(url, root / "blobs")
    limit = max_upload or settings.max_upload
    app = FastAPI(title="Transfer Zoo registry", version=__version__,
                  description="Versioned, documented checkpoints with lineage.")
    app.state.service = service
    web_templates = create_templates()

    @app.exception_handler(ZooError)
    async def zoo_error(_request: Request, exc: ZooError) -> JSONResponse:
        status = 400
        if isinstance(exc, NotFoundError | UnknownNameError):
            status = 404
        elif isinstance(exc, AuthError):
            status = 403 if "needed" in str(exc) and "token for namespace" in str(exc) else 401
        elif isinstance(exc, CardError):
            status = 422
        elif isinstance(exc, IntegrityError) and "upload limit" in str(exc):
            status = 413
        # huggingface_hub picks its exception by X-Error-Code; the zoo's clients read the JSON body
        code = ("RepoNotFound" if isinstance(exc, ModelNotFoundError) else
                "RevisionNotFound" if isinstance(exc, RevisionNotFoundError) else
                "EntryNotFound" if isinstance(exc, NotFoundError) else None)
        headers = {"X-Error-Message": str(exc).encode("ascii", "replace").decode()}  # huggingface_hub shows it
        if code:
            headers["X-Error-Code"] = code
        return JSONResponse({"error": type(exc).__name__, "message": str(exc)}, status_code=status, headers=headers)

    def viewer(authorization: str | None = Header(None)) -> Viewer:
        token = None
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise AuthError("Authorization must be 'Bearer <token>'")
        return service.viewer_for(token)

    def writer(who: Viewer = Depends(viewer)) -> Viewer:
        if not who.namespaces and not who.admin:
            raise AuthError("writing needs a token: Authorization: Bearer <token> (zoo token create NAMESPACE)")
        return who

    @app.exception_handler(HubError)
    async def hub_error(_request: Request, exc: HubError) -> JSONResponse:
        return exc.response()

    app.include_router(create_router(service, viewer, writer))

    @app.middleware("http")
    async def server_timing(request: Request, call_next):
        """Server-Timing: app;dur=MS on every answer (the catalog benchmark reads it; so do browser dev tools)."""
        start = time.perf_counter()
        response = await call_next(request)
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - start) * 1000:.2f}"
        return response

    def wants_html(request: Request) -> bool:
        return "text/html" in request.headers.get("accept", "") and not request.url.path.startswith("/api/")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """A person's browser gets the catalog's error page; API clients get JSON."""
        if exc.status_code == 404 and wants_html(request):
            return web_templates.TemplateResponse(request, "error.html", {"message": f"There is no page at "
                                                  f"{request.url.path}."}, status_code=404)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        if wants_html(request):  # e.g. /?page=abc typed by hand
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors())
            return web_templates.TemplateResponse(request, "error.html", {"title": "Bad request",
                                                  "message": problems}, status_code=400)
        return await request_validation_exception_handler(request, exc)

    @app.get("/api/models", summary="List models (Hugging Face Hub format)")
    def list_models(request: Request, search: str | None = None, author: str | None = None,
                    filter: list[str] = Query([]), sort: str | None = None, limit: int | None = None, page: int = 1,
                    who: Viewer = Depends(viewer)) -> JSONResponse:
        return list_models_response(service, request, who, search, author, filter, sort, limit, max(1, page))

    @app.get("/api/search", summary="Search models with filters, metrics and lineage (zoo format)")
    def search(q: str | None = None, task: str | None = None, modality: str | None = None,
               backbone: str | None = None, family: str | None = None, strategy: str | None = None,
               license: str | None = None, tag: str | None = None, library: str | None = None,
               namespace: str | None = None, metric: str | None = Query(None, description="e.g. accuracy>=0.9"),
               descendant_of: str | None = None, relation: str | None = None, sort: str = "updated",
               page: int = 1, per_page: int = 20, who: Viewer = Depends(viewer)) -> dict[str, Any]:
        return service.search(q, viewer=who, task=task, modality=modality, backbone=backbone, family=family,
                              strategy=strategy, license=license, tag=tag, library=library, namespace=namespace,
                              metric=parse_metric(metric), descendant_of=descendant_of, relation=relation, sort=sort,
                              page=page, per_page=per_page)

    @app.get("/api/models/{namespace}/{name}")
    def model(namespace: str, name: str, who: Viewer = Depends(viewer)) -> dict[str, Any]:
        """The model: the Hub's ModelInfo at `latest` (when published) plus the zoo's summary and versions."""
        summary = service.model_summary(f"{namespace}/{name}", who)
        versions = [v.as_dict() for v in service.versions(f"{namespace}/{name}", who)]
        try:
            hub = model_info(service, namespace, name, resolve_version(service, namespace, name, "main", who), who)
        except HubError:  # nothing published yet: drafts only
            hub = {"id": f"{namespace}/{name}", "author": namespace}
        return {**hub, **summary, "versions": versions}

    @app.get("/api/models/{namespace}/{name}/versions/{revision}")
    def version(namespace: str, name: str, revision: str, who: Viewer = Depends(viewer)) -> dict[str, Any]:
        return service.resolve(f"{namespace}/{name}@{revision}", who).as_dict()

    @app.get("/api/models/{namespace}/{name}/aliases/history")
    def alias_history(namespace: str, name: str, who: Viewer = Depends(viewer)) -> list[dict[str, Any]]:
        return service.alias_history(f"{namespace}/{name}", who)

    @app.get("/api/models/{namespace}/{name}/lineage/{revision}")
    def lineage(namespace: str, name: str, revision: str,
                direction: Literal["both", "ancestors", "descendants"] = "both",
                who: Viewer = Depends(viewer)) -> dict[str, Any]:
        return service.lineage(f"{namespace}/{name}@{revision}", direction, who)

    @app.api_route("/api/models/{namespace}/{name}/versions/{revision}/files/{path:path}", methods=["GET", "HEAD"])
    def download(namespace: str, name: str, revision: str, path: str, request: Request,
                 who: Viewer = Depends(viewer)) -> Response:
        spec, _ = service.open_file(f"{namespace}/{name}@{revision}", path, who)
        return file_response(service, spec, request)

    @app.head("/api/blobs/{sha256}")
    def blob_exists(sha256: str, who: Viewer = Depends(writer)) -> Response:
        return Response(status_code=200 if service.blobs.exists(sha256) else 404)

    @app.put("/api/blobs/{sha256}")
    async def upload(sha256: str, request: Request, path: str = Query(..., description="file name, for messages"),
                     who: Viewer = Depends(writer)) -> dict[str, Any]:
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ZooError("the blob address must be a lowercase 64-hex sha256")
        check_path(path)
        declared = request.headers.get("content-length")
        if declared is not None and int(declared) > limit:
            raise IntegrityError(f"{path}: {declared} bytes is larger than the upload limit of {limit} bytes")
        with service.blobs.writer(path, limit) as blob:  # streamed to disk while hashing: bounded memory
            async for chunk in request.stream():
                blob.write(chunk)
            digest, size = blob.commit(int(declared) if declared else None, sha256)
        return {"sha256": digest, "size": size}

    @app.post("/api/models/{namespace}/{name}/versions", status_code=201)
    def publish(namespace: str, name: str, body: VersionIn, who: Viewer = Depends(writer)) -> dict[str, Any]:
        files = [FileSpec(f.path, f.sha256, f.size) for f in body.files]
        for f in files:
            if not service.blobs.exists(f.sha256):
                raise ZooError(f"file '{f.path}' ({f.sha256}) was not uploaded: PUT /api/blobs/{f.sha256} first")
            actual = service.blobs.size(f.sha256)
            if actual != f.size:
                raise IntegrityError(f"file '{f.path}': declared {f.size} bytes, stored blob has {actual}")
        info = service.publish(f"{namespace}/{name}", files, viewer=who, status=body.status, parent=body.parent,
                               relation=body.relation, visibility=body.visibility, description=body.description)
        return info.as_dict()

    @app.post("/api/models/{namespace}/{name}/aliases")
    def set_alias(namespace: str, name: str, body: AliasIn, who: Viewer = Depends(writer)) -> dict[str, Any]:
        return service.set_alias(f"{namespace}/{name}", body.alias, body.version, who).as_dict()

    @app.post("/api/models/{namespace}/{name}/versions/{revision}/status")
    def set_status(namespace: str, name: str, revision: str, body: StatusIn,
                   who: Viewer = Depends(writer)) -> dict[str, Any]:
        return service.set_status(f"{namespace}/{name}@{revision}", body.status, body.reason, who).as_dict()

    # the catalog's pages come last: /{namespace}/{name} must not shadow an API route
    app.mount("/static", StaticFiles(directory=templates_dir() / "static"), name="static")
    app.include_router(create_web_router(service, viewer, web_templates))
    return app


def file_response(service: RegistryService, spec: FileSpec, request: Request) -> Response:
    """Stream a stored file, honouring If-None-Match (304) and a single byte Range (206)."""
    etag = f'"{spec.sha256}"'
    headers = {"ETag": etag, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream",
               "Content-Disposition": f'attachment; filename="{Path(spec.path).name}"'}
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers={"ETag": etag})
    start, end, status = 0, spec.size - 1, 200
    requested = request.headers.get("range")
    if requested and spec.size:
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", requested.strip())
        if not match or (not match.group(1) and not match.group(2)):
            return Response(status_code=416, headers={"Content-Range": f"bytes */{spec.size}"})
        if match.group(1):
            start = int(match.group(1))
            end = min(int(match.group(2)), spec.size - 1) if match.group(2) else spec.size - 1
        else:  # suffix: the last N bytes
            start = max(0, spec.size - int(match.group(2)))
        if start > end or start >= spec.size:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{spec.size}"})
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{spec.size}"
    headers["Content-Length"] = str(end - start + 1 if spec.size else 0)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    body = service.blobs.read_range(spec.sha256, start, end) if spec.size else iter([b""])
    return StreamingResponse(body, status_code=status, headers=headers)
