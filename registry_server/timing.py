"""Headers every answer carries, as a plain ASGI middleware (Starlette's `@app.middleware("http")` wraps every
request in extra tasks and streams, a large share of a fast answer's cost):

- `Server-Timing: app;dur=MS, db;dur=MS;desc="N queries"`: the whole request, and the part spent in the database
  (every statement the registry's engines run is timed while a request is in flight), for bench/registry.py and
  browser dev tools;
- the security headers, and the Content-Security-Policy on everything but FastAPI's docs pages (they load their
  scripts from a CDN).
"""

from __future__ import annotations

import time
from contextvars import ContextVar

from sqlalchemy import event
from sqlalchemy.engine import Engine

# [seconds in the database, statements] of the request in flight; a list, so that routes run in the thread pool
# (which copies the context) add to the same one
_db: ContextVar[list | None] = ContextVar("zoo_db_timing", default=None)


def time_queries(engine: Engine) -> None:
    """Time every statement `engine` runs into the request in flight (nothing outside a request)."""

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):
        conn.info["zoo_started"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):
        spent = _db.get()
        if spent is not None:
            spent[0] += time.perf_counter() - conn.info.pop("zoo_started", time.perf_counter())
            spent[1] += 1


class HeadersMiddleware:
    def __init__(self, app, headers: dict[str, str], csp: str, csp_exempt: tuple[str, ...]):
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        self.csp = (b"content-security-policy", csp.encode())
        self.csp_exempt = csp_exempt

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        spent = [0.0, 0]
        token = _db.set(spent)
        extra = self.headers + ([] if scope["path"].startswith(self.csp_exempt) else [self.csp])

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                timing = (f"app;dur={(time.perf_counter() - start) * 1000:.2f}, "
                          f'db;dur={spent[0] * 1000:.2f};desc="{spent[1]} queries"')
                names = {k for k, _ in extra} | {b"server-timing"}
                message["headers"] = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names] + \
                    extra + [(b"server-timing", timing.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            _db.reset(token)
