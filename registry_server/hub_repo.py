"""More of the Hugging Face Hub's API, for what its clients call beyond reading and committing: `get_paths_info`
(and `CommitOperationCopy`, which needs it), `list_repo_commits`, `whoami` (`hf auth login --token`), `auth_check`;
a clear 4xx for the operations the zoo does not have (branches, tags, deleting or moving repositories, settings,
discussions); and `RepoNotFound` for the ids the zoo cannot hold (`gpt2`, datasets, spaces), so the client says
"repository not found", never "check your connection".

`fallback` is included after the zoo's own routers: its catch-alls must not shadow them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse

from registry_server import deps, lfs
from registry_server.hub import hub_time, hub_version
from registry_server.schemas import ERRORS
from zoo_core.errors import ModelNotFoundError, NotFoundError, RequestError, ZooError
from zoo_core.registry.service import RegistryService, Viewer
from zoo_core.registry.types import empty_commit

router = APIRouter(tags=["Hugging Face Hub API"], responses=ERRORS)
fallback = APIRouter(include_in_schema=False)
Service = Depends(deps.service)
Reader = Depends(deps.viewer)
Writer = Depends(deps.writer)

# A file at least this large is reported with `lfs` metadata; smaller ones as regular git files, so that the client
# copies them (CommitOperationCopy) by content, as it does on the Hub.
LFS_REPORTED = 10 * 1024 * 1024


def path_entries(files: list[dict[str, Any]], wanted: list[str]) -> list[dict[str, Any]]:
    """The Hub's entries for the `wanted` paths that exist: each a file, or a folder some file lies in."""
    entries = []
    for path in dict.fromkeys(p.strip("/") for p in wanted):
        found = next((f for f in files if f["path"] == path), None)
        if found is not None:
            entry = {"type": "file", "path": path, "oid": found["sha256"][:40], "size": found["size"]}
            if found["size"] >= LFS_REPORTED:
                entry["lfs"] = {"oid": found["sha256"], "size": found["size"], "pointerSize": 134}
            entries.append(entry)
        elif path and any(f["path"].startswith(path + "/") for f in files):
            entries.append({"type": "directory", "path": path, "oid": "0" * 40})
    return entries


@router.post("/api/models/{namespace}/{name}/paths-info/{revision:path}")
async def paths_info(namespace: str, name: str, revision: str, request: Request, who: Viewer = Reader,
                     service: RegistryService = Service) -> list[dict[str, Any]]:
    """`get_paths_info`: the client posts a form (`paths=a&paths=b`); paths that do not exist are left out."""
    if request.headers.get("content-type", "").startswith("application/json"):
        wanted = (await lfs.read_json(request, "a paths-info request")).get("paths") or []
        if not isinstance(wanted, list):
            raise ZooError("a paths-info request's `paths` is a list of file names")
    else:
        wanted = parse_qs((await request.body()).decode("utf-8", "replace")).get("paths", [])
    info = hub_version(service, namespace, name, revision, who)
    return path_entries(info.files, [str(p) for p in wanted])


@router.get("/api/models/{namespace}/{name}/commits/{revision:path}")
def commits(namespace: str, name: str, revision: str, who: Viewer = Reader,
            service: RegistryService = Service) -> list[dict[str, Any]]:
    """`list_repo_commits`: one commit per version up to `revision`, newest first, with the message the version
    was published with (drafts are not on `main`)."""
    head = hub_version(service, namespace, name, revision, who)
    model_id = f"{namespace}/{name}"
    history = [v for v in service.versions(model_id, who) if v.status != "draft" and v.number <= head.number]
    answer = []
    for v in reversed(history):
        title, _, body = (v.message or f"version {v.number}").partition("\n")
        answer.append({"id": v.commit, "authors": [{"user": v.created_by or namespace, "avatar": None}],
                       "date": hub_time(v.created_at), "title": title, "message": body.strip(),
                       "formatted": {"title": title, "message": body.strip()}})
    if not answer:  # an empty repository's history: its empty commit
        summary = service.model_summary(model_id, who)
        answer.append({"id": empty_commit(model_id), "authors": [{"user": namespace, "avatar": None}],
                       "date": hub_time(summary["created_at"]), "title": "initial commit", "message": "",
                       "formatted": {"title": "initial commit", "message": ""}})
    return answer


@router.get("/api/whoami-v2")
def whoami(request: Request, who: Viewer = Writer, service: RegistryService = Service) -> dict[str, Any]:
    """Whom the token belongs to, in the Hub's shape (`hf auth login --token` and `whoami` read it)."""
    token = request.headers["authorization"].partition(" ")[2].strip()
    found = service.token_info(token)
    return {"type": "user", "id": found["namespace"], "name": found["namespace"], "fullname": found["namespace"],
            "email": None, "emailVerified": False, "isPro": False, "canPay": False, "avatarUrl": None, "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": found["name"], "role": "write",
                                                             "createdAt": hub_time(found["created_at"])}}}


@router.get("/api/models/{namespace}/{name}/auth-check")
def auth_check(namespace: str, name: str, who: Viewer = Reader, service: RegistryService = Service
               ) -> dict[str, Any]:
    """Whether the caller may read the model (RepoNotFound when not: a private model is not found)."""
    service.model_summary(f"{namespace}/{name}", who)
    return {}


@router.get("/{namespace}/{name}/commit/{commit}", include_in_schema=False)
def commit_page(namespace: str, name: str, commit: str) -> RedirectResponse:
    """A commit's URL (a commit's `commitUrl`) is its version's page."""
    return RedirectResponse(f"/{namespace}/{name}/v/{commit}", status_code=307)


# -- what the zoo does not do: a 4xx that says so (never a bare 404, which reads as "repository not found") --------
UNSUPPORTED = {
    "branch": "the zoo has no branches: `main` is the model's latest version, and aliases (`zoo alias`) name others",
    "tag": "the zoo tags every version itself (v1, v2, ...; each commit makes the next one); to name a version, "
           "use an alias (`zoo alias`)",
    "settings": "repository settings cannot be changed through the Hub API: a model's visibility is chosen when "
                "it is created",
    "discussions": "the zoo has no discussions or pull requests",
    "super-squash": "the zoo's versions are immutable: history cannot be squashed",
}


def _unsupported(message: str) -> RequestError:
    return RequestError(f"not supported by the zoo: {message}", 405)


# one route a method, each with its own operation id (a route of several methods repeats one in the OpenAPI schema)
@router.delete("/api/repos/delete", operation_id="delete_repo")
@router.post("/api/repos/delete", operation_id="delete_repo_by_post")
def delete_repo() -> None:
    raise _unsupported("models are not deleted; withdraw a version with `zoo yank MODEL@N`")


@router.post("/api/repos/move", operation_id="move_repo")
@router.put("/api/repos/move", operation_id="move_repo_by_put")
def move_repo() -> None:
    raise _unsupported("models are not renamed or moved; publish under the new name (`zoo push`)")


@fallback.api_route("/api/models/{namespace}/{name}/{operation}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
@fallback.api_route("/api/models/{namespace}/{name}/{operation}/{rest:path}",
                    methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
def unsupported(namespace: str, name: str, operation: str, rest: str = "", who: Viewer = Reader,
                service: RegistryService = Service) -> None:
    """Any other operation on a model: RepoNotFound when the model is not there (`gpt2/revision/main`), else a
    405 that names what the zoo does not do."""
    service.model_summary(f"{namespace}/{name}", who)
    raise _unsupported(UNSUPPORTED.get(operation, f"the Hub's '{operation}' operation"))


def not_held(repo_id: str, why: str) -> ModelNotFoundError:
    error = ModelNotFoundError(repo_id)
    error.args = (f"repository '{repo_id}' not found: {why}",)
    return error


@fallback.api_route("/api/models/{name}", methods=["GET", "HEAD"])
@fallback.api_route("/api/models/{name}/revision/{revision:path}", methods=["GET", "HEAD"])
@fallback.api_route("/{name}/resolve/{revision}/{path:path}", methods=["GET", "HEAD"])
def one_segment(name: str, revision: str = "", path: str = "") -> None:
    raise not_held(name, "the zoo's models are named NAMESPACE/NAME (this registry holds only what was pushed to "
                         "it, not huggingface.co's models)")


@fallback.api_route("/api/{kind}/{rest:path}", methods=["GET", "HEAD", "POST"])
@fallback.api_route("/{kind}/{namespace}/{name}/resolve/{rest:path}", methods=["GET", "HEAD"])
def not_a_model(request: Request, kind: str, rest: str = "", namespace: str = "", name: str = "") -> None:
    if kind not in ("datasets", "spaces"):
        raise NotFoundError(f"There is no page at {request.url.path}.")
    repo_id = f"{namespace}/{name}" if namespace else "/".join(rest.split("/")[:2])
    raise not_held(repo_id, f"the zoo holds models only, not {kind}")

