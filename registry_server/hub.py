"""The Hugging Face Hub's API, so the unmodified `huggingface_hub` client (and `transformers`) can be pointed at
the zoo with `HF_ENDPOINT` or `endpoint=`: model info, file trees, refs, the model list, and the small-commit write
path (create_repo, upload_file / upload_folder). Files are served by downloads.py (`/resolve/`).

Revisions map to the zoo: a version number (`3` or `v3`), an alias (`production`; `main` is `latest`), or a
version's commit id (the 40-hex sha1 of its manifest). Errors are the zoo's own classes, whose `X-Error-Code`
(RepoNotFound, RevisionNotFound, EntryNotFound) the client turns into its exceptions. Nothing here ever mentions
Xet, so clients stay on plain HTTP; large files come in through the Git LFS batch API (lfs.py).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from registry_server import commits, deps, lfs
from registry_server.caching import conditional_json
from registry_server.schemas import ERRORS
from zoo_core.errors import ConflictError, EntryNotFoundError, RevisionNotFoundError, ZooError
from zoo_core.registry.cards import front_matter, has_yaml_aliases, parse_card
from zoo_core.registry.reads import FixedCache, card_metadata
from zoo_core.registry.service import FileSpec, RegistryService, VersionInfo, Viewer
from zoo_core.registry.types import empty_commit

router = APIRouter(tags=["Hugging Face Hub API"], responses=ERRORS)
Service = Depends(deps.service)
Reader = Depends(deps.viewer)
Writer = Depends(deps.writer)


def hub_time(value: str | datetime) -> str:
    """`2024-01-01T00:00:00.000Z`: the only date format the client parses."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def hub_revision(revision: str, path: str = "") -> tuple[str, str]:
    """(revision, path) with a git ref spelled out: `refs/heads/main` is `main` and `refs/tags/v3` is `v3`. The
    client quotes the slashes (`refs%2Fheads%2Fmain`), but they arrive decoded, so the route's revision is `refs` and
    the ref's rest starts the path."""
    if revision == "refs" and path.count("/") >= 1:
        kind, name, *rest = path.split("/", 2)
        revision, path = f"refs/{kind}/{name}", (rest[0] if rest else "")
    for prefix in ("refs/heads/", "refs/tags/"):
        if revision.startswith(prefix):
            revision = revision[len(prefix):]
    return revision, path


def zoo_ref(namespace: str, name: str, revision: str) -> str:
    """The zoo reference of a Hub revision: `main` (and `HEAD`, `refs/heads/main`) is `latest`."""
    revision = hub_revision(revision)[0]
    return f"{namespace}/{name}@{'latest' if revision in ('main', 'HEAD') else revision}"


def hub_version(service: RegistryService, namespace: str, name: str, revision: str, who: Viewer,
                summary: dict[str, Any] | None = None) -> VersionInfo:
    """The version a Hub revision names, as the Hub's clients expect it: `main` of a model with nothing published
    yet is an empty commit (as an empty Hub repository's is), and a yanked version is not found on any route.
    `summary`: the model's `model_summary` when the caller has it already."""
    ref = zoo_ref(namespace, name, revision)
    if ref.endswith("@latest") and (summary or service.model_summary(ref, who))["latest"] is None:
        model_id = f"{namespace}/{name}"
        return VersionInfo(model_id, 0, "empty", empty_commit(model_id), "", None, None, None, None, {}, ["latest"])
    return service.downloadable(ref, who)


def hub_model_info(service: RegistryService, info: VersionInfo, who: Viewer,
                   summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Hub's ModelInfo for one version, with the zoo's own facts under `zoo`; `summary`: the model's
    `model_summary` when the caller has it already."""
    namespace = info.model_id.split("/")[0]
    summary = summary or service.model_summary(info.model_id, who)
    card_data = card_metadata(info.card) if info.card else {}
    read = tuple((f["path"], f["sha256"], f["size"]) for f in info.files
                 if f["path"] == "config.json" or f["path"].endswith(".safetensors"))
    config, safetensors = blob_facts(service, read)
    return {
        "_id": info.commit, "id": info.model_id, "modelId": info.model_id, "author": namespace,
        "sha": info.commit, "lastModified": hub_time(info.created_at or summary["updated_at"]),
        "createdAt": hub_time(summary["created_at"]), "private": summary["visibility"] == "private",
        "gated": False, "disabled": False, "downloads": 0, "likes": 0,
        "library_name": card_data.get("library_name") or ("transfer-zoo" if info.files else None),
        "tags": sorted(set(summary["tags"] or [])), "pipeline_tag": summary["task"], "cardData": card_data,
        "config": {k: config[k] for k in ("architectures", "model_type") if k in config} or None,
        "safetensors": safetensors,
        "siblings": [{"rfilename": f["path"], "size": f["size"], "blobId": f["sha256"][:40],
                      "lfs": {"sha256": f["sha256"], "size": f["size"], "pointerSize": 134}}
                     for f in info.files],
        "zoo": {"version": info.number, "status": info.status, "aliases": info.aliases, "metrics": info.metrics,
                "parents": info.parents, "backbone": info.backbone, "strategy": info.strategy,
                "card_complete": info.card_complete, "card_missing": info.card_missing},
    }


def _json_object(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


_FACTS = FixedCache(4096)  # by the blobs' (path, sha256, size): what they say never changes


def blob_facts(service: RegistryService, files: tuple[tuple[str, str, int], ...]
               ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """What ModelInfo reads from a version's files (`files`: its config.json and .safetensors files as (path,
    sha256, size)): the config, and the tensors' summary. Kept per set of blobs: stored bytes never change under
    their sha256, so neither does what they say, and a version's answer no longer reads files on every request.
    Shared between callers: read it, never change it."""
    found = _FACTS.get(files)
    if found is None:
        specs = {path: FileSpec(path, sha256, size) for path, sha256, size in files}
        found = _json_object(service._read_small(specs, "config.json")), safetensors_summary(service, specs)
        _FACTS.put(files, found)
    return found


SAFETENSORS_HEADER_MAX = 16 * 1024 * 1024


def safetensors_summary(service: RegistryService, specs: dict[str, FileSpec]) -> dict[str, Any] | None:
    """The Hub's `safetensors` field (parameters per dtype, and their total), read from the files' headers only:
    8 bytes of length, then a JSON header of at most a few MiB."""
    parameters: dict[str, int] = {}
    for spec in specs.values():
        if not spec.path.endswith(".safetensors") or spec.size < 8:
            continue
        length = int.from_bytes(b"".join(service.read(spec, 0, 7)), "little")
        if length > min(SAFETENSORS_HEADER_MAX, spec.size - 8):
            continue  # not a safetensors file after all
        header = _json_object(b"".join(service.read(spec, 8, 8 + length - 1)).decode("utf-8", "replace"))
        for key, tensor in header.items():
            if key != "__metadata__" and isinstance(tensor, dict):
                count = 1
                for dim in tensor.get("shape") or []:
                    count *= int(dim)
                parameters[str(tensor.get("dtype"))] = parameters.get(str(tensor.get("dtype")), 0) + count
    return {"parameters": parameters, "total": sum(parameters.values())} if parameters else None


@router.get("/api/models", summary="List models (Hugging Face Hub format)")
def list_models(request: Request, search: str | None = None, author: str | None = None,
                filter: list[str] = Query([]), pipeline_tag: str | None = None, library: str | None = None,
                sort: str | None = None, limit: int | None = None, page: int = 1, full: str | None = None,
                cardData: str | None = None, expand: list[str] = Query([]),  # noqa: N803 (the Hub's name)
                who: Viewer = Reader, service: RegistryService = Service) -> JSONResponse:
    """A JSON list, paginated the Hub's way: an absolute `Link: <...>; rel="next"`. Filters are ANDed; a model's
    pipeline tag and library count as tags, as on the Hub."""
    page = max(1, page)
    tags = [f for f in filter if ":" not in f] + [t for t in (pipeline_tag, library) if t]
    license = next((f.split(":", 1)[1] for f in filter if f.startswith("license:")), None)
    order = {"created_at": "created", "createdAt": "created"}.get(sort or "", "updated")
    per_page = min(limit or 100, 100)
    found = service.search(search, viewer=who, namespace=author, tag=tags or None, license=license, sort=order,
                           page=page, per_page=per_page)
    detail = _true(full) or _true(cardData) or bool(expand)
    items = []
    for r in found["results"]:
        item = {"id": r["id"], "_id": r["id"], "modelId": r["id"], "author": r["id"].split("/")[0],
                "private": r["visibility"] == "private", "lastModified": hub_time(r["updated_at"]),
                "createdAt": hub_time(r["created_at"]), "tags": r["tags"], "pipeline_tag": r["task"],
                "library_name": r["library"] or "transfer-zoo", "downloads": 0, "likes": 0,
                "zoo": {"latest": r["latest"], "metrics": r["metrics"], "versions": r["versions"],
                        "card_complete": r["card_complete"]}}
        if detail:
            info = hub_model_info(service, service.resolve(f"{r['id']}@latest", who), who)
            if not _true(cardData) and not _true(full) and "cardData" not in expand:
                info.pop("cardData")
            item.update(info if not expand else {k: info[k] for k in expand if k in info})
        items.append(item)
    headers = {"X-Total-Count": str(found["total"])}
    if page * per_page < found["total"] and (limit is None or page * per_page < limit):
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "page"] + [("page", str(page + 1))]
        headers["Link"] = f'<{str(request.url.replace(query=urlencode(params)))}>; rel="next"'
    return JSONResponse(items, headers=headers)


def _true(flag: str | None) -> bool:
    return (flag or "").lower() in ("1", "true")


@router.get("/api/models/{namespace}/{name}/revision/{revision:path}")
async def model_at_revision(namespace: str, name: str, revision: str, request: Request, who: Viewer = Reader,
                            service: RegistryService = Service) -> Response:
    answer = await deps.read(service, model_info_at, service, namespace, name, revision, who)
    return conditional_json(request, answer, who)  # ETag, 304: caching.py


def model_info_at(service: RegistryService, namespace: str, name: str, revision: str, who: Viewer) -> dict[str, Any]:
    with service.reading():  # one session for both reads
        summary = service.model_summary(f"{namespace}/{name}", who)
        return hub_model_info(service, hub_version(service, namespace, name, revision, who, summary), who, summary)


@router.get("/api/models/{namespace}/{name}/tree/{revision}")
@router.get("/api/models/{namespace}/{name}/tree/{revision}/{path:path}")
def tree(namespace: str, name: str, revision: str, path: str = "", recursive: str = "false", who: Viewer = Reader,
         service: RegistryService = Service) -> JSONResponse:
    revision, path = hub_revision(revision, path)
    info = hub_version(service, namespace, name, revision, who)
    prefix = path.strip("/")
    deep = recursive.lower() == "true"
    entries, folders = [], set()
    for f in info.files:
        rel = f["path"]
        if prefix and not rel.startswith(prefix + "/"):
            continue
        inside = rel[len(prefix) + 1:] if prefix else rel
        parts = inside.split("/")
        for depth in range(1, len(parts)):  # the folders on the way
            folder = "/".join(([prefix] if prefix else []) + parts[:depth])
            if (deep or depth == 1) and folder not in folders:
                folders.add(folder)
                entries.append({"type": "directory", "path": folder, "oid": "0" * 40})
        if deep or len(parts) == 1:
            entries.append({"type": "file", "path": rel, "oid": f["sha256"][:40], "size": f["size"],
                            "lfs": {"oid": f["sha256"], "size": f["size"], "pointerSize": 134}})
    if prefix and not entries:
        raise EntryNotFoundError(f"'{prefix}' not found in {info.model_id}@{info.number}", commit=info.commit)
    return JSONResponse(entries)


@router.get("/api/models/{namespace}/{name}/refs")
def refs(namespace: str, name: str, who: Viewer = Reader, service: RegistryService = Service) -> dict[str, Any]:
    versions = service.versions(f"{namespace}/{name}", who)
    branches = [{"name": "main" if alias == "latest" else alias,
                 "ref": f"refs/heads/{'main' if alias == 'latest' else alias}",
                 "targetCommit": v.commit} for v in versions for alias in v.aliases]
    if not any(b["name"] == "main" for b in branches):  # nothing published yet: main is the empty commit
        branches.append({"name": "main", "ref": "refs/heads/main", "targetCommit": empty_commit(f"{namespace}/{name}")})
    tags = [{"name": f"v{v.number}", "ref": f"refs/tags/v{v.number}", "targetCommit": v.commit}
            for v in versions if v.status != "yanked"]
    return {"branches": branches, "tags": tags, "converts": [], "pullRequests": []}


# -- the small-commit write path: create_repo, upload_file / upload_folder --------------------------------------------
@router.post("/api/repos/create")
async def create_repo(request: Request, who: Viewer = Writer, service: RegistryService = Service) -> dict[str, Any]:
    body = await lfs.read_json(request, "a create_repo request")
    if body.get("type", "model") not in (None, "model"):
        raise ZooError("the zoo holds models only (no datasets or spaces)")
    namespace, name = body.get("organization"), body.get("name")
    if not namespace:
        raise ZooError("create the repository under a namespace: HfApi().create_repo('NAMESPACE/NAME')")
    if not isinstance(namespace, str) or not isinstance(name, str):
        raise ZooError("a create_repo request names the repository with string `organization` and `name`")
    url = f"{str(request.base_url).rstrip('/')}/{namespace}/{name}"
    try:
        # huggingface_hub 0.x sends `private`; 1.x and later send `visibility`
        private = body.get("private") is True or body.get("visibility") == "private"
        await run_in_threadpool(service.create_model, f"{namespace}/{name}", who, "private" if private else None)
    except ConflictError as exc:
        exc.details["url"] = url  # create_repo(exist_ok=True) reads it from the 409
        raise
    return {"url": url, "name": f"{namespace}/{name}"}


@router.post("/api/validate-yaml")
async def validate_yaml(request: Request) -> dict[str, Any]:
    body = await lfs.read_json(request, "a validate-yaml request")
    content = body.get("content") or ""
    if not isinstance(content, str):
        raise ZooError("a validate-yaml request's `content` is the model card's text (a string)")
    if has_yaml_aliases(front_matter(content)):
        return {"errors": [{"message": "YAML anchors and aliases (&name / *name) are refused: write the values "
                                       "out"}], "warnings": []}
    try:
        parse_card(content)
    except Exception as exc:  # the client shows these to the user
        return {"errors": [{"message": str(exc)}], "warnings": []}
    return {"errors": [], "warnings": []}


@router.post("/api/models/{namespace}/{name}/preupload/{revision}")
async def preupload(namespace: str, name: str, revision: str, request: Request, who: Viewer = Writer
                    ) -> dict[str, Any]:
    body = await lfs.read_json(request, "a preupload request")
    files = body.get("files", [])
    if not isinstance(files, list) or not all(isinstance(f, dict) and isinstance(f.get("path"), str) for f in files):
        raise ZooError("a preupload request's `files` is a list of {'path': <string>, 'size': <bytes>, ...}")
    # files from the LFS threshold up stream in through the Git LFS batch API (lfs.py), smaller ones in the commit
    return {"files": [{"path": f["path"], "uploadMode": lfs.upload_mode(request, f.get("size")), "shouldIgnore": False,
                       "oid": None} for f in files]}


@router.post("/api/models/{namespace}/{name}/commit/{revision:path}")
async def commit(namespace: str, name: str, revision: str, request: Request, create_pr: str | None = None,
                 who: Viewer = Writer, service: RegistryService = Service) -> dict[str, Any]:
    """A commit (NDJSON operations) to `main` becomes the next version; see `RegistryService.commit`."""
    if _true(create_pr):
        raise ZooError("the zoo has no pull requests; commit to main")
    if hub_revision(revision)[0] not in ("main", "HEAD"):
        raise RevisionNotFoundError(f"commits go to main: '{revision}' is not a branch of {namespace}/{name} (a "
                                    "zoo version never changes once published; each commit makes the next one)")
    async with commits.received(request, service, who, namespace) as operations:  # streamed, bounded, undone if refused
        # the database, in the thread pool: an async route must not hold the event loop while it waits for locks
        info = await run_in_threadpool(service.commit, f"{namespace}/{name}", operations, viewer=who)
    base = str(request.base_url).rstrip("/")
    # the Hub's form of the URL (the client parses it); it redirects to the version's page
    return {"commitUrl": f"{base}/{namespace}/{name}/commit/{info.commit}", "commitOid": info.commit,
            "commitMessage": (info.message or "").split("\n")[0], "pullRequestUrl": None}
