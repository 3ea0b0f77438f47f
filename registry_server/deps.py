"""What the routes share: the registry service of the app, and who is asking (a bearer token, declared with
FastAPI's `HTTPBearer` so /docs shows the scheme and its Authorize button)."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from zoo_core.errors import AuthError
from zoo_core.registry.service import ANONYMOUS, RegistryService, Viewer

# auto_error=False: anonymous callers read public models; writing routes ask for a token through `writer`
bearer = HTTPBearer(auto_error=False, scheme_name="token",
                    description="A token for a namespace, made on the server's machine: zoo token create NAMESPACE")


# async: a plain function would cost every request a trip through the thread pool
async def service(request: Request) -> RegistryService:
    return request.app.state.service


async def viewer(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Viewer:
    """Who is asking: anonymous without a token, else the namespaces the token grants (AuthError when unknown;
    the token's lookup, a database query, runs in the thread pool)."""
    if credentials is None:
        if request.headers.get("authorization"):  # another scheme, or Bearer without a token
            raise AuthError("Authorization must be 'Bearer <token>'")
        return ANONYMOUS
    return await run_in_threadpool(request.app.state.service.viewer_for, credentials.credentials)


async def writer(who: Viewer = Depends(viewer)) -> Viewer:
    """Like `viewer`, but a token is required."""
    if not who.namespaces and not who.admin:
        raise AuthError("writing needs a token: Authorization: Bearer <token> (zoo token create NAMESPACE)")
    return who
