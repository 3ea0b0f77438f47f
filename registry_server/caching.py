"""Conditional answers for the registry's metadata: a strong ETag (a hash of the exact bytes answered) and
`If-None-Match` answered with 304 Not Modified.

A version's files and recipe never change, but what the answer also says does (status, aliases, which parents the
viewer may see), so caches must ask again every time (`no-cache`, never `immutable`); the ETag makes asking cheap.
Answers differ by viewer: every one says `Vary: Authorization`, and an answer to a token is `private` (no shared
cache keeps it). A 304 is only ever given for the viewer's own answer, computed (and authorised) first: an ETag
seen elsewhere cannot get a private answer confirmed, or tell whether a model exists.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from zoo_core.registry.types import Viewer


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110's weak comparison, which If-None-Match uses: `*`, or any listed tag with or without `W/`."""
    if not if_none_match:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


def conditional_json(request: Request, content: Any, who: Viewer) -> Response:
    """`content` as JSON, with its ETag; 304 when the request's If-None-Match already names it.

    Encoded by orjson straight from the dict, with no pydantic round trip (that was a fifth of a version answer's
    time): the routes build their dicts in their response model's exact shape, and the routes' response_model
    still documents it in the OpenAPI schema (tests/test_api_reads.py holds the two together)."""
    body = orjson.dumps(content)
    etag = etag_of(body)
    anonymous = not who.namespaces and not who.admin  # an anonymous viewer sees only what everyone sees
    headers = {"ETag": etag, "Vary": "Authorization",
               "Cache-Control": "public, no-cache" if anonymous else "private, no-cache"}
    if matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
