"""The Hugging Face Hub's read API, so the unmodified `huggingface_hub` client (and `transformers`) can be pointed
at the zoo with `HF_ENDPOINT` or `endpoint=`. See ../shared/notes/hf-hub-protocol.md for what the client needs.

Revisions map to the zoo: a version number (`3` or `v3`), an alias (`production`; `main` is `latest`), or a
version's commit id (the 40-hex sha1 of its manifest). Files are served directly from `/resolve/` (no redirects),
with `X-Repo-Commit`, `ETag` = the file's sha256, `Content-Length`, Range; errors carry `X-Error-Code`. Nothing
here ever mentions Xet, so clients stay on plain HTTP.
"""

from __future__ import annotations

import base64
import io
import json
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from zoo_core.errors import ZooError
from zoo_core.registry.cards import parse_card
from zoo_core.registry.service import (
    FileSpec,
    ModelNotFoundError,
    NotFoundError,
    RegistryService,
    RevisionNotFoundError,
    VersionInfo,
    Viewer,
)


class HubError(Exception):
    """An error answered the Hub's way: status, `X-Error-Code`, and a JSON `{"error": message}`."""

    def __init__(self, status: int, code: str | None, message: str, commit: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.commit = status, code, message, commit

    def response(self) -> JSONResponse:
        headers = {"X-Error-Message": self.message.encode("ascii", "replace").decode()}
        if self.code:
            headers["X-Error-Code"] = self.code
        if self.commit:
            headers["X-Repo-Commit"] = self.commit
        return JSONResponse({"error": self.message}, status_code=self.status, headers=headers)


def hub_time(value: str | datetime) -> str:
    """`2024-01-01T00:00:00.000Z`: the only date format the client parses."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def zoo_revision(revision: str) -> str:
    return "latest" if revision in ("main", "HEAD") else revision


def repo_not_found(exc: Exception, who: Viewer) -> HubError:
    """The Hub answers 401 to anonymous callers and 404 to others; both carry RepoNotFound."""
    return HubError(401 if not who.namespaces and not who.admin else 404, "RepoNotFound", str(exc))


def resolve_version(service: RegistryService, namespace: str, name: str, revision: str, who: Viewer) -> VersionInfo:
    try:
        return service.resolve(f"{namespace}/{name}@{zoo_revision(revision)}", who)
    except ModelNotFoundError as exc:
        raise repo_not_found(exc, who) from None
    except RevisionNotFoundError as exc:
        raise HubError(404, "RevisionNotFound", str(exc)) from None
    except ZooError as exc:
        raise HubError(400, None, str(exc)) from None


def model_info(service: RegistryService, namespace: str, name: str, info: VersionInfo, who: Viewer) -> dict[str, Any]:
    """The Hub's ModelInfo for one version, with the zoo's own facts under `zoo`."""
    summary = service.model_summary(f"{namespace}/{name}", who)
    card_data = parse_card(info.card)[0] if info.card else {}
    return {
        "_id": info.commit, "id": f"{namespace}/{name}", "modelId": f"{namespace}/{name}", "author": namespace,
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


def create_router(service: RegistryService, viewer_dependency, writer_dependency) -> APIRouter:
    router = APIRouter()

    def resolve(namespace: str, name: str, revision: str, who: Viewer) -> VersionInfo:
        return resolve_version(service, namespace, name, revision, who)

    @router.get("/api/models/{namespace}/{name}/revision/{revision}")
    def model_at_revision(namespace: str, name: str, revision: str, request: Request,
                          who: Viewer = Depends(viewer_dependency)) -> dict[str, Any]:
        return model_info(service, namespace, name, resolve(namespace, name, revision, who), who)

    @router.get("/api/models/{namespace}/{name}/tree/{revision}")
    @router.get("/api/models/{namespace}/{name}/tree/{revision}/{path:path}")
    def tree(namespace: str, name: str, revision: str, path: str = "", recursive: str = "false",
             who: Viewer = Depends(viewer_dependency)) -> Response:
        info = resolve(namespace, name, revision, who)
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
            raise HubError(404, "EntryNotFound", f"'{prefix}' not found in {namespace}/{name}", info.commit)
        return JSONResponse(entries)

    @router.get("/api/models/{namespace}/{name}/refs")
    def refs(namespace: str, name: str, who: Viewer = Depends(viewer_dependency)) -> dict[str, Any]:
        versions = _versions(service, namespace, name, who)
        branches = [{"name": "main" if alias == "latest" else alias, "ref": f"refs/heads/{alias}",
                     "targetCommit": v.commit} for v in versions for alias in v.aliases]
        tags = [{"name": f"v{v.number}", "ref": f"refs/tags/v{v.number}", "targetCommit": v.commit}
                for v in versions if v.status != "yanked"]
        return {"branches": branches, "tags": tags, "converts": [], "pullRequests": []}

    @router.api_route("/{namespace}/{name}/resolve/{revision}/{path:path}", methods=["GET", "HEAD"])
    def resolve_file(namespace: str, name: str, revision: str, path: str, request: Request,
                     who: Viewer = Depends(viewer_dependency)) -> Response:
        from registry_server.app import file_response

        info = resolve(namespace, name, revision, who)
        if info.status == "yanked":
            raise HubError(404, "RevisionNotFound", f"{info.model_id}@{info.number} was yanked: "
                                                    f"{info.status_reason or 'no reason given'}")
        entry = next((f for f in info.files if f["path"] == path), None)
        if entry is None:
            raise HubError(404, "EntryNotFound", f"{path} not found in {info.model_id}@{info.number}", info.commit)
        response = file_response(service, FileSpec(path, entry["sha256"], entry["size"]), request)
        response.headers["X-Repo-Commit"] = info.commit
        return response

    # -- the small-commit write path: create_repo, upload_file / upload_folder ---------------------------------
    @router.post("/api/repos/create")
    async def create_repo(request: Request, who: Viewer = Depends(writer_dependency)) -> JSONResponse:
        body = await request.json()
        if body.get("type", "model") not in (None, "model"):
            raise HubError(400, None, "the zoo holds models only (no datasets or spaces)")
        namespace, name = body.get("organization"), body.get("name")
        if not namespace:
            raise HubError(400, None, "create the repository under a namespace: HfApi().create_repo('NAMESPACE/NAME')")
        try:
            created = service.create_model(f"{namespace}/{name}", who, "private" if body.get("private") else None)
        except ZooError as exc:
            raise HubError(403 if "token" in str(exc) else 400, None, str(exc)) from None
        url = f"{str(request.base_url).rstrip('/')}/{namespace}/{name}"
        if not created:
            return JSONResponse({"error": "You already created this model repo", "url": url}, status_code=409)
        return JSONResponse({"url": url, "name": f"{namespace}/{name}"})

    @router.post("/api/validate-yaml")
    async def validate_yaml(request: Request) -> dict[str, Any]:
        body = await request.json()
        try:
            parse_card(body.get("content") or "")
        except Exception as exc:  # the client shows these to the user
            return {"errors": [{"message": str(exc)}], "warnings": []}
        return {"errors": [], "warnings": []}

    @router.post("/api/models/{namespace}/{name}/preupload/{revision}")
    async def preupload(namespace: str, name: str, revision: str, request: Request,
                        who: Viewer = Depends(writer_dependency)) -> dict[str, Any]:
        body = await request.json()
        # "regular" for every file keeps every client version off Git LFS and Xet: content comes in the commit
        return {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                          for f in body.get("files", [])]}

    @router.post("/api/models/{namespace}/{name}/commit/{revision}")
    async def commit(namespace: str, name: str, revision: str, request: Request, create_pr: str | None = None,
                     who: Viewer = Depends(writer_dependency)) -> dict[str, Any]:
        """A commit becomes the next version: the parent revision's files, changed as the commit says, published
        atomically with the same card and token rules as `zoo push`."""
        if create_pr and create_pr.lower() in ("1", "true"):
            raise HubError(400, None, "the zoo has no pull requests; commit to main")
        lines = [json.loads(line) for line in (await request.body()).splitlines() if line.strip()]
        try:
            files = {f["path"]: FileSpec(f["path"], f["sha256"], f["size"])
                     for f in service.resolve(f"{namespace}/{name}@{zoo_revision(revision)}", who).files}
        except NotFoundError:
            files = {}
        header = {}
        for line in lines:
            key, value = line.get("key"), line.get("value", {})
            if key == "header":
                header = value
            elif key == "file":
                data = base64.b64decode(value["content"]) if value.get("encoding") == "base64" else \
                    value["content"].encode()
                files[value["path"]] = service.store_file(io.BytesIO(data), value["path"], size=len(data))
            elif key == "deletedFile":
                files.pop(value["path"], None)
            elif key == "deletedFolder":
                folder = value["path"].rstrip("/") + "/"
                files = {p: f for p, f in files.items() if not p.startswith(folder)}
            elif key == "lfsFile":
                raise HubError(400, None, "large files go through `zoo push`: this endpoint takes regular uploads")
        try:
            info = service.publish(f"{namespace}/{name}", list(files.values()), viewer=who,
                                   description=header.get("description") or None)
        except ModelNotFoundError as exc:
            raise HubError(404, "RepoNotFound", str(exc)) from None
        base = str(request.base_url).rstrip("/")
        return {"commitUrl": f"{base}/{namespace}/{name}/commit/{info.commit}", "commitOid": info.commit,
                "commitMessage": header.get("summary", ""), "pullRequestUrl": None}

    return router


def list_models_response(service: RegistryService, request: Request, who: Viewer, search: str | None,
                         author: str | None, filters: list[str], sort: str | None, limit: int | None,
                         page: int) -> JSONResponse:
    """`GET /api/models` the Hub's way: a JSON list, paginated with an absolute `Link: <...>; rel="next"`."""
    tag = next((f for f in filters if ":" not in f), None)
    license = next((f.split(":", 1)[1] for f in filters if f.startswith("license:")), None)
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


def _versions(service: RegistryService, namespace: str, name: str, who: Viewer) -> list[VersionInfo]:
    try:
        return service.versions(f"{namespace}/{name}", who)
    except NotFoundError as exc:
        raise repo_not_found(exc, who) from None
