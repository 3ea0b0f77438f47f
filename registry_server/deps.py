"""What the routes share: the registry service of the app, and who is asking (a bearer token, declared with
FastAPI's `HTTPBearer` so /docs shows the scheme and its Authorize button)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from zoo_core.errors import AuthError
from zoo_core.registry.blobs import S3BlobStore
from zoo_core.registry.service import ANONYMOUS, RegistryService, Viewer

T = TypeVar("T")

# auto_error=False: anonymous callers read public models; writing routes ask for a token through `writer`
bearer = HTTPBearer(auto_error=False, scheme_name="token",
                    description="A token for a namespace, made on the server's machine: zoo token create NAMESPACE")


# async: a plain function would cost every request a trip through the thread pool
async def service(request: Request) -> RegistryService:
    return request.app.state.service


async def viewer(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Viewer:
    """Who is asking: anonymous without a token, else the namespaces the token grants (AuthError when unknown).
    The token's lookup is a short read (`read`: inline on SQLite); the renewal of its last use, a write once a
    minute, runs in the thread pool."""
    if credentials is None:
        if request.headers.get("authorization"):  # another scheme, or Bearer without a token
            raise AuthError("Authorization must be 'Bearer <token>'")
        return ANONYMOUS
    service = request.app.state.service
    who, due = await read(service, service.check_token, credentials.credentials)
    if due is not None:
        await run_in_threadpool(service.mark_used, due)
    return who


async def writer(who: Viewer = Depends(viewer)) -> Viewer:
    """Like `viewer`, but a token is required."""
    if not who.namespaces and not who.admin:
        raise AuthError("writing needs a token: Authorization: Bearer <token> (zoo token create NAMESPACE)")
    return who


def reads_inline(service: RegistryService) -> bool:
    """Whether the hot reads (`read`) run on the event loop: with SQLite and blobs on local disk, a read is a few
    indexed lookups in this process (WAL: it never waits for a writer) and the thread pool's hand-off cost as much
    again; PostgreSQL and S3 answer over the network, which must not hold the loop."""
    found = service.__dict__.get("_reads_inline")
    if found is None:
        found = service._reads_inline = (service.engine.dialect.name == "sqlite"
                                         and not isinstance(service.blobs, S3BlobStore))
    return found


async def read(service: RegistryService, fn: Callable[..., T], *args) -> T:
    """`fn(*args)`, a short read of the registry: inline when `reads_inline`, else in the thread pool."""
    if reads_inline(service):
        return fn(*args)
    return await run_in_threadpool(fn, *args)
