"""The registry server: one app factory over small routers, each a thin face over the registry service.

- api.py: the zoo's JSON API under /api (OpenAPI docs at /docs)
- hub.py: the Hugging Face Hub's API, for the unmodified huggingface_hub client and transformers
- downloads.py: file downloads (the zoo's and the Hub's `/resolve/` URLs)
- web.py: the catalog's pages

Anonymous users read public models; writing needs `Authorization: Bearer <token>` for the model's namespace;
private models are not found for everyone else. Every error, whoever raises it, is answered here in one shape
(`ZooError.wire`: a JSON body plus `X-Error-Code` / `X-Error-Message`); a person's browser gets the catalog's error
page instead.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from registry_server import api, docs, downloads, hub, hub_repo, lfs, web
from registry_server.bodies import BodyLimits
from registry_server.direct import DirectDownloads
from registry_server.timing import HeadersMiddleware, time_queries
from zoo_core import __version__
from zoo_core.errors import NotFoundError, RequestError, ZooError
from zoo_core.registry.service import RegistryService
from zoo_core.settings import get_settings

SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
                    "Referrer-Policy": "same-origin"}
# The catalog runs no script at all and shows only its own images: a card's remote image (a tracking pixel that would
# tell its author every visitor's address) is not loaded, and nothing is proxied (a proxy would fetch any URL).
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'none'; object-src 'none'; img-src 'self' data:; "
                           "style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def create_app(registry: str | Path | None = None, database_url: str | None = None,
               max_upload: int | None = None, card_policy: str | None = None) -> FastAPI:
    settings = get_settings()
    root = Path(registry or settings.registry).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    url = database_url or settings.database_url or f"sqlite:///{root / 'registry.db'}"
    service = RegistryService(url, root / "blobs", card_policy=card_policy)
    limit = max_upload or settings.max_upload
    app = FastAPI(title="Transfer Zoo registry", version=__version__, docs_url=None, redoc_url=None,
                  description="Versioned, documented checkpoints with lineage.", lifespan=_report_syncs)
    app.state.service, app.state.max_upload = service, limit
    app.state.templates = web.create_templates()

    # Server-Timing (app and database phases) and the security headers on every answer: timing.py
    time_queries(service.engine)
    app.add_middleware(DirectDownloads)  # innermost: downloads without the routing machinery (direct.py)
    app.add_middleware(BodyLimits, max_body=settings.max_body, timeout=settings.body_timeout)  # bodies.py
    app.add_middleware(HeadersMiddleware, headers=SECURITY_HEADERS, csp=CONTENT_SECURITY_POLICY,
                       csp_exempt=("/docs",))  # /docs sends its own policy: it runs Swagger UI (docs.py)

    @app.exception_handler(ZooError)
    async def zoo_error(request: Request, exc: ZooError) -> Response:
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}"
                             for e in exc.errors())
        return error_response(request, RequestError(problems, 422, detail=jsonable_encoder(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        error = NotFoundError(f"There is no page at {request.url.path}.") if exc.status_code == 404 else \
            RequestError(str(exc.detail), exc.status_code)
        return error_response(request, error, exc.headers)

    @app.exception_handler(Exception)
    async def server_failed(request: Request, exc: Exception) -> Response:
        # A bug, also one in the handlers above: Starlette sends this, then re-raises for uvicorn to log the
        # traceback (from its own thread: logs.py). uvicorn then closes the connection, so the answer says so: a
        # keep-alive client would otherwise send its next request into the closed socket (connection reset).
        # Plain JSON, no template: nothing here should be able to fail in turn.
        message = f"the server failed ({type(exc).__name__}); its log has the details"
        return JSONResponse({"error": message, "type": "ServerError", "code": "ServerError", "status": 500}, 500,
                            {"Connection": "close", "X-Error-Code": "ServerError", "X-Error-Message": message})

    docs.install(app)
    app.include_router(hub.router)
    app.include_router(hub_repo.router)
    lfs.install(app, settings)
    app.include_router(api.router)
    app.include_router(downloads.router)
    # the catalog's pages come last: /{namespace}/{name} must not shadow an API route
    app.mount("/static", StaticFiles(directory=web.templates_dir() / "static"), name="static")
    app.include_router(web.router)
    app.include_router(hub_repo.fallback)  # catch-alls, after every route they could shadow (a model named resolve)
    return app


@contextlib.asynccontextmanager
async def _report_syncs(app: FastAPI):
    """On the way out, how many sync rounds the uploads' renames shared (group_sync.py; bench/registry.py reads it).
    Printed, not logged: the log's writer thread may not get to it before the process ends."""
    yield
    renames = getattr(app.state.service.blobs, "renames", None)
    if renames is not None and renames.requests:
        stats = renames.stats()
        print(f"zoo serve: {stats['requests']} stored blobs' renames synced in {stats['rounds']} rounds",
              file=sys.stderr, flush=True)


def freeze_startup() -> None:
    """For a serving process, once its app is built: what starting made (modules, routes, schemas, plugins) lives as
    long as the process, yet each full garbage collection scanned it all (105,000 objects: 64 ms of CPU, about once
    in 6,000 hot reads, stalling every request in flight). gc.freeze() sets it aside, so collections scan only what
    requests made."""
    gc.collect()
    gc.freeze()


def served_app() -> FastAPI:
    """`create_app()` from the environment, frozen for serving: the factory of `zoo serve --workers N`'s processes."""
    app = create_app()
    freeze_startup()
    return app


def error_response(request: Request, error: ZooError, extra_headers: dict[str, str] | None = None) -> Response:
    """The one way an error is answered: `error.wire()` as JSON, or the catalog's error page for a person's
    browser asking for a page that is not there (404) or with a malformed query (400)."""
    status, headers, body = error.wire()
    if status in (400, 404, 422) and "text/html" in request.headers.get("accept", "") \
            and not request.url.path.startswith("/api/"):
        title = "Not found" if status == 404 else "Bad request"
        return request.app.state.templates.TemplateResponse(request, "error.html", {
            "title": title, "message": error.message}, status_code=400 if status == 422 else status)
    return JSONResponse(body, status_code=status, headers={**(extra_headers or {}), **headers})
