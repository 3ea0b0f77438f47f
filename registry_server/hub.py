"""The Hugging Face Hub's API, so the unmodified `huggingface_hub` client (and `transformers`) can be pointed at
the zoo with `HF_ENDPOINT` or `endpoint=`: model info, file trees, refs, the model list, and the small-commit write
path (create_repo, upload_file / upload_folder). Files are served by downloads.py (`/resolve/`).

Revisions map to the zoo: a version number (`3` or `v3`), an alias (`production`; `main` is `latest`), or a
version's commit id (the 40-hex sha1 of its manifest). Errors are the zoo's own classes, whose `X-Error-Code`
(RepoNotFound, RevisionNotFound, EntryNotFound) the client turns into its exceptions. Nothing here ever mentions
Xet, so clients stay on plain HTTP; large files come in through the Git LFS batch API (lfs.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from registry_server import commits, deps, lfs
from registry_server.caching import conditional_json
from registry_server.schemas import ERRORS
from zoo_core.errors import ConflictError, EntryNotFoundError, ZooError
from zoo_core.registry.cards import front_matter, has_yaml_aliases, parse_card
from zoo_core.registry.reads import card_metadata
from zoo_core.registry.service import RegistryService, VersionInfo, Viewer

router = APIRouter(tags=["Hugging Face Hub API"], responses=ERRORS)
Service = Depends(deps.service)
Reader = Depends(deps.viewer)
Writer = Depends(deps.writer)


def hub_time(value: str | datetime) -> str:
    """`2024-01-01T00:00:00.000Z`: the only date format the client parses."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def zoo_ref(namespace: str, name: str, revision: str) -> str:
    """The zoo reference of a Hub revision: `main` (and `HEAD`) is `latest`."""
    return f"{namespace}/{name}@{'latest' if revision in ('main', 'HEAD') else revision}"


def hub_model_info(service: RegistryService, info: VersionInfo, who: Viewer,
                   summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Hub's ModelInfo for one version, with the zoo's own facts under `zoo`; `summary`: the model's
    `model_summary` when the caller has it already."""
    namespace = info.model_id.split("/")[0]
    summary = summary or service.model_summary(info.model_id, who)
    card_data = card_metadata(info.card) if info.card else {}
    return {
        "_id": info.commit, "id": info.model_id, "modelId": info.model_id, "author": namespace,
        "sha": info.commit, "lastModified": hub_time(info.created_at), "createdAt": hub_time(summary["created_at"]),
        "private": summary["visibility"] == "private", "gated": False, "disabled": False, "downloads": 0,
        "likes": 0, "library_name": card_data.get("library_name") or "transfer-zoo",
        "tags": sorted(set(summary["tags"] or [])), "pipeline_tag": summary["task"], "cardData": card_data,
        "siblings": [{"rfilename": f["path"], "size": f["size"], "blobId": f["sha256"][:40],
                      "lfs": {"sha256": f["sha256"], "size": f["size"], "pointerSize": 134}}
                     for f in info.files],
        "zoo": {"version": info.number, "status": info.status, "aliases": info.aliases, "metrics": info.metrics,
                "parents": info.parents, "backbone": info.backbone, "strategy": info.strategy},
    }


@router.get("/api/models", summary="List models (Hugging Face Hub format)")
def list_models(request: Request, search: str | None = None, author: str | None = None,
                filter: list[str] = Query([]), sort: str | None = None, limit: int | None = None, page: int = 1,
                who: Viewer = Reader, service: RegistryService = Service) -> JSONResponse:
    """A JSON list, paginated the Hub's way: an absolute `Link: <...>; rel="next"`."""
    page = max(1, page)
    tag = next((f for f in filter if ":" not in f), None)
    license = next((f.split(":", 1)[1] for f in filter if f.startswith("license:")), None)
    order = {"lastModified": "updated", "createdAt": "updated", None: "updated"}.get(sort, "name")
    per_page = min(limit or 100, 100)
    found = service.search(search, viewer=who, namespace=author, tag=tag, license=license, sort=order,
                           page=page, per_page=per_page)
    items = [{"id": r["id"], "modelId": r["id"], "author": r["id"].split("/")[0], "private": r["visibility"] ==
              "private", "lastModified": hub_time(r["updated_at"]), "tags": r["tags"], "pipeline_tag": r["task"],
              "library_name": "transfer-zoo", "downloads": 0, "likes": 0,
              "zoo": {"latest": r["latest"], "metrics": r["metrics"], "versions": r["versions"]}}
             for r in found["results"]]
    headers = {"X-Total-Count": str(found["total"])}
    if page * per_page < found["total"] and (limit is None or page * per_page < limit):
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "page"] + [("page", str(page + 1))]
        headers["Link"] = f'<{str(request.url.replace(query=urlencode(params)))}>; rel="next"'
    return JSONResponse(items, headers=headers)


@router.get("/api/models/{namespace}/{name}/revision/{revision}")
def model_at_revision(namespace: str, name: str, revision: str, request: Request, who: Viewer = Reader,
                      service: RegistryService = Service) -> Response:
    info = service.resolve(zoo_ref(namespace, name, revision), who)
    return conditional_json(request, hub_model_info(service, info, who), who)  # ETag, 304: caching.py


@router.get("/api/models/{namespace}/{name}/tree/{revision}")
@router.get("/api/models/{namespace}/{name}/tree/{revision}/{path:path}")
def tree(namespace: str, name: str, revision: str, path: str = "", recursive: str = "false", who: Viewer = Reader,
         service: RegistryService = Service) -> JSONResponse:
    info = service.resolve(zoo_ref(namespace, name, revision), who)
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
    branches = [{"name": "main" if alias == "latest" else alias, "ref": f"refs/heads/{alias}",
                 "targetCommit": v.commit} for v in versions for alias in v.aliases]
    tags = [{"name": f"v{v.number}", "ref": f"refs/tags/v{v.number}", "targetCommit": v.commit}
            for v in versions if v.status != "yanked"]
    return {"branches": branches, "tags": tags, "converts": [], "pullRequests": []}


# -- the small-commit write path: create_repo, upload_file / upload_folder --------------------------------------------
@router.post("/api/repos/create")
async def create_repo(request: Request, who: Viewer = Writer, service: RegistryService = Service) -> dict[str, Any]:
    body = await request.json()
    if body.get("type", "model") not in (None, "model"):
        raise ZooError("the zoo holds models only (no datasets or spaces)")
    namespace, name = body.get("organization"), body.get("name")
    if not namespace:
        raise ZooError("create the repository under a namespace: HfApi().create_repo('NAMESPACE/NAME')")
    url = f"{str(request.base_url).rstrip('/')}/{namespace}/{name}"
    try:
        service.create_model(f"{namespace}/{name}", who, "private" if body.get("private") else None)
    except ConflictError as exc:
        exc.details["url"] = url  # create_repo(exist_ok=True) reads it from the 409
        raise
    return {"url": url, "name": f"{namespace}/{name}"}


@router.post("/api/validate-yaml")
async def validate_yaml(request: Request) -> dict[str, Any]:
    body = await request.json()
    content = body.get("content") or ""
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
    body = await lfs.read_json(request)
    # files from the LFS threshold up stream in through the Git LFS batch API (lfs.py), smaller ones in the commit
    return {"files": [{"path": f["path"], "uploadMode": lfs.upload_mode(request, f.get("size")), "shouldIgnore": False,
                       "oid": None} for f in body.get("files", [])]}


@router.post("/api/models/{namespace}/{name}/commit/{revision}")
async def commit(namespace: str, name: str, revision: str, request: Request, create_pr: str | None = None,
                 who: Viewer = Writer, service: RegistryService = Service) -> dict[str, Any]:
    """A commit (NDJSON operations) becomes the next version; see `RegistryService.commit`."""
    if create_pr and create_pr.lower() in ("1", "true"):
        raise ZooError("the zoo has no pull requests; commit to main")
    async with commits.received(request, service, who, namespace) as operations:  # streamed, bounded, undone if refused
        parent = zoo_ref(namespace, name, revision).partition("@")[2]
        info = service.commit(f"{namespace}/{name}", operations, viewer=who, parent_revision=parent)
    header = next((op.get("value") or {} for op in operations if op.get("key") == "header"), {})
    base = str(request.base_url).rstrip("/")
    return {"commitUrl": f"{base}/{namespace}/{name}/commit/{info.commit}", "commitOid": info.commit,
            "commitMessage": header.get("summary", ""), "pullRequestUrl": None}
