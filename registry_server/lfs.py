"""Large files from the Hub's clients: the Git LFS batch API (`basic` transfer), the way huggingface_hub uploads
files that `preupload` marks `lfs` (those from `ZOO_LFS_THRESHOLD` bytes up).

1. `POST /{ns}/{name}.git/info/lfs/objects/batch` (with the writer's token) answers, per object, an upload action
   unless the writer may already publish those bytes (it uploaded them itself, or a version it can read holds
   them; see zoo_core/registry/uploads.py). The client skips objects without an action, so a hash alone never
   earns one: bytes stored for someone else are uploaded again (and still stored once).
2. The client's upload PUT carries no Authorization header, so the action's `href` is signed: one object (sha256
   and size), one owner, valid for `HREF_TTL` seconds. The body streams into the same content-addressed blob store
   as `zoo push` (bounded memory), is verified against the sha256 and size, and is recorded as the owner's upload,
   which keeps it from `gc` until the commit names it by `lfsFile` oid.

huggingface_hub 1.x and 2.x send every LFS file through Xet instead whenever `hf_xet` is installed (it is one of
their dependencies), whatever the server answers; the zoo speaks no Xet, so its token routes say how to turn it off.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response

from registry_server import deps
from registry_server.schemas import ERRORS
from zoo_core.errors import ForbiddenError, UploadTooLargeError, ZooError
from zoo_core.registry.service import RegistryService, Viewer
from zoo_core.registry.uploads import owner_of
from zoo_core.settings import Settings

router = APIRouter(tags=["Hugging Face Hub API"], responses=ERRORS)
Service = Depends(deps.service)
Writer = Depends(deps.writer)
LFS_JSON = "application/vnd.git-lfs+json"
HREF_TTL = 1800  # seconds from the batch answer to the start of the PUT
SHA256 = re.compile(r"[0-9a-f]{64}")
NO_XET = ("the zoo does not speak Xet: huggingface_hub >= 1.0 uploads large files through Xet whenever hf_xet is "
          "installed; set HF_HUB_DISABLE_XET=1 to upload them to the zoo through Git LFS")


def install(app: FastAPI, settings: Settings) -> None:
    app.state.lfs_threshold = settings.lfs_threshold
    app.state.lfs_key = (settings.lfs_secret.get_secret_value().encode() if settings.lfs_secret
                         else secrets.token_bytes(32))
    app.include_router(router)


def upload_mode(request: Request, size: Any) -> str:
    """`preupload`'s answer for one file: `lfs` from the threshold up (empty files are always regular)."""
    return "lfs" if isinstance(size, int) and size >= max(1, request.app.state.lfs_threshold) else "regular"


async def read_json(request: Request, what: str = "the body", limit: int = 1024 * 1024) -> dict[str, Any]:
    """A JSON object request body of at most `limit` bytes, read without trusting Content-Length; `what` names
    it in the 400 when the body is empty, not JSON, or JSON but not an object (every such body once answered 500)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise UploadTooLargeError(f"the request body is larger than {limit} bytes")
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise ZooError(f"{what} must be a JSON object: {exc}" if body.strip() else f"{what} is empty: it must be a "
                       "JSON object") from None
    if not isinstance(value, dict):
        raise ZooError(f"{what} must be a JSON object, not {type(value).__name__}")
    return value


def _signature(key: bytes, sha256: str, size: int, owner: str, expires: int) -> str:
    return hmac.new(key, f"{sha256}\n{size}\n{owner}\n{expires}".encode(), hashlib.sha256).hexdigest()


def signed_href(request: Request, sha256: str, size: int, owner: str) -> str:
    expires = int(time.time()) + HREF_TTL
    query = urlencode({"size": size, "owner": owner, "expires": expires,
                       "sig": _signature(request.app.state.lfs_key, sha256, size, owner, expires)})
    return f"{str(request.base_url).rstrip('/')}/api/lfs/objects/{sha256}?{query}"


@router.post("/{namespace}/{name}.git/info/lfs/objects/batch", summary="Git LFS batch API (uploads, basic transfer)")
async def batch(namespace: str, name: str, request: Request, who: Viewer = Writer,
                service: RegistryService = Service) -> Response:
    if not who.can_write(namespace):
        raise ForbiddenError(f"a token for namespace '{namespace}' is needed to upload to {namespace}/{name}")
    body = await read_json(request, "a Git LFS batch request")
    if not isinstance(body.get("objects"), list):
        raise ZooError("a Git LFS batch request is a JSON object with `operation` and a list of `objects`")
    if body.get("operation") != "upload":
        raise ZooError("the zoo's Git LFS API takes uploads only; files download from /{namespace}/{name}/resolve/")
    if "basic" not in (body.get("transfers") or ["basic"]) or body.get("hash_algo", "sha256") != "sha256":
        raise ZooError("the zoo's Git LFS API offers the `basic` transfer and sha256 object ids only")
    limit, owner, objects = request.app.state.max_upload, owner_of(who), []
    for obj in body["objects"]:
        oid, size = (obj.get("oid"), obj.get("size")) if isinstance(obj, dict) else (None, None)
        if not isinstance(oid, str) or not SHA256.fullmatch(oid) or not isinstance(size, int) or size < 0:
            raise ZooError(f"a Git LFS object is {{'oid': <64 lowercase hex>, 'size': <bytes>}}, not {obj!r}")
        if size > limit:
            raise UploadTooLargeError(f"object {oid}: {size} bytes is larger than the upload limit of {limit} bytes")
        answer: dict[str, Any] = {"oid": oid, "size": size}
        if await run_in_threadpool(service.needs_upload, who, oid):
            answer["authenticated"] = True
            answer["actions"] = {"upload": {"href": signed_href(request, oid, size, owner), "expires_in": HREF_TTL}}
        objects.append(answer)
    return JSONResponse({"transfer": "basic", "objects": objects, "hash_algo": "sha256"}, media_type=LFS_JSON)


@router.put("/api/lfs/objects/{sha256}", summary="Receive one Git LFS object (the signed URL of a batch answer)")
async def upload(sha256: str, request: Request, size: int = Query(..., ge=0), owner: str = Query(...),
                 expires: int = Query(...), sig: str = Query(...), service: RegistryService = Service) -> Response:
    """Streamed into the blob store and verified against sha256 and size; a body that does not match stores
    nothing. The URL is the credential: it names one object, one owner, and when it stops being valid."""
    # compare_digest takes ASCII strings only (a non-ASCII `sig` was a 500): compared as UTF-8 bytes
    if not hmac.compare_digest(sig.encode(), _signature(request.app.state.lfs_key, sha256, size, owner,
                                                        expires).encode()):
        raise ForbiddenError("this upload URL is not one the zoo signed (altered or forged): ask the Git LFS batch "
                             "API for a new one")
    if expires < time.time():
        raise ForbiddenError("this upload URL has expired: ask the Git LFS batch API for a new one")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) != size:
        raise ZooError(f"object {sha256}: the body has {declared} bytes, the upload URL is for {size}")
    with service.open_upload("the uploaded object", sha256, size, request.app.state.max_upload) as blob:
        async for chunk in request.stream():
            blob.write(chunk)
        await run_in_threadpool(blob.commit, lease=lambda digest: service.record_upload(owner, digest))
    return Response(status_code=200)


@router.api_route("/api/models/{namespace}/{name}/xet-write-token/{revision}", methods=["GET", "POST"],
                  include_in_schema=False)
@router.api_route("/api/models/{namespace}/{name}/xet-read-token/{revision}", methods=["GET", "POST"],
                  include_in_schema=False)
def no_xet(namespace: str, name: str, revision: str) -> Response:
    """hf_xet shows the URL of a failed request but not the answer's message: the refusal is sent to a URL that
    says what to do."""
    return RedirectResponse("/api/no-xet/set-HF_HUB_DISABLE_XET=1-to-upload-through-git-lfs", status_code=307)


@router.api_route("/api/no-xet/{advice}", methods=["GET", "POST"], include_in_schema=False)
def no_xet_advice(advice: str) -> None:
    raise ZooError(NO_XET)
