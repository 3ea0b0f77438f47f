"""Bounds on request bodies, applied before any route reads a byte (a plain ASGI middleware):

- A body a route reads whole (the JSON of versions, aliases, statuses, attestations and the Hub's calls) is at most
  `max_body` bytes: a larger Content-Length is answered 413 at once, unread, and a body sent without a length is cut
  off at the limit. (FastAPI reads such a body, then checks the token: an anonymous 100 MB POST once cost the server
  565 MB before its 401.) Uploads stream to disk and are bounded by `--max-upload` in their own routes.
- No NUL character in a URL's path or query (`%00`): the databases cannot hold or compare it (PostgreSQL answered a
  search for `q=%00` with a 500), and no name, alias or filter has one. Answered 400 before any route runs.
- Every body must keep arriving: `timeout` seconds without a byte end the request with 408, so slow or stalled
  clients cannot hold the server's connections and memory (once, 300 hanging uploads were held over a minute).
"""

from __future__ import annotations

import asyncio
import re

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from zoo_core.errors import UploadTooLargeError, ZooError

# routes that stream their body to disk, bounded by --max-upload there: blob uploads, Git LFS objects, Hub commits
STREAMED = re.compile(r"^/api/blobs/[^/]+$|^/api/lfs/objects/[^/]+$|^/api/models/[^/]+/[^/]+/commit/")


class BodyLimits:
    def __init__(self, app, max_body: int, timeout: float):
        self.app, self.max_body, self.timeout = app, max_body, timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and (b"%00" in scope.get("query_string", b"") or "\x00" in scope["path"]):
            status, headers, body = ZooError("the URL holds a NUL character (%00); no name, reference or filter "
                                             "may").wire()
            return await JSONResponse(body, status, headers)(scope, receive, send)
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        limit = None if STREAMED.match(scope["path"]) else self.max_body
        length = next((v for k, v in scope.get("headers", []) if k == b"content-length"), None)
        if limit is not None and length is not None and length.isdigit() and int(length) > limit:
            status, headers, body = self._too_large(limit).wire()
            return await JSONResponse(body, status, headers)(scope, receive, send)
        received, done = 0, False

        async def bounded_receive():
            nonlocal received, done
            if done:  # the body is complete: later calls wait for the disconnect, however long a download takes
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
            except TimeoutError:
                raise HTTPException(408, f"the request body stalled: no bytes for {self.timeout:g} s") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                done = not message.get("more_body", False)
                if limit is not None and received > limit:
                    raise HTTPException(413, str(self._too_large(limit)))
            else:
                done = True
            return message

        await self.app(scope, bounded_receive, send)

    @staticmethod
    def _too_large(limit: int) -> UploadTooLargeError:
        return UploadTooLargeError(f"the request body is larger than {limit:,} bytes (ZOO_MAX_BODY); files go up "
                                   "as uploads (PUT /api/blobs/..., zoo push, the Hub clients' uploads)")
