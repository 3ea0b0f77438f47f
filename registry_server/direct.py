"""Downloads answered before FastAPI's routing. An 8 MiB Range request cost the zoo about 1 ms more than nginx
before its first byte (bench/stream.py: 0.55-0.68x nginx's throughput), and py-spy put most of it in the
machinery around the one query: matching the URL against every route of the included routers, solving the
route's dependencies, the synchronous route's trip through the thread pool and back, and the wrappers that every
`send` of an answer passes through.

`DirectDownloads` (a plain ASGI middleware, inside the ones that add headers and refuse bad URLs) recognises the two
download URLs with the routes' own path patterns and answers the plain case with the routes' own functions: the
viewer (`deps.viewer`), the one-query lookup and the response (downloads.py). Anything else (a token that is not
valid, a file that is missing, yanked or not the viewer's to see, a reserved namespace whose URLs belong to other
routes) goes on to the routes, which answer it exactly as before, errors included.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path

from registry_server import deps, downloads
from zoo_core.errors import ZooError
from zoo_core.registry.refs import RESERVED_NAMESPACES

FILES = compile_path(downloads.FILES)[0]
RESOLVE = compile_path(downloads.RESOLVE)[0]


class DirectDownloads:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        # a root path (a proxy's prefix) changes what the routes match: leave those requests to them
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD") and not scope.get("root_path"):
            response = await answer(scope)
            if response is not None:
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


async def answer(scope) -> Response | None:
    """The download `scope` asks for when it is the plain case, else None (the routes answer it)."""
    files = FILES.match(scope["path"])
    found = files or RESOLVE.match(scope["path"])
    if found is None:
        return None
    namespace, name, revision, path = found.group("namespace", "name", "revision", "path")
    if namespace.lower() in RESERVED_NAMESPACES:  # /api/..., /docs/...: no model there, other routes' URLs
        return None
    request = Request(scope)
    service = scope["app"].state.service
    try:
        who = await deps.viewer(request, await deps.bearer(request))
    except ZooError:  # the route says what is wrong with the token
        return None
    if files:
        located = await deps.read(service, service.find_file, namespace, name, revision, path, who)
        return None if located is None else downloads.file_response(service, located[0], request)
    located = await deps.read(service, downloads.find_resolved, service, namespace, name, revision, path, who)
    return None if located is None else downloads.resolved_response(service, *located, request)
