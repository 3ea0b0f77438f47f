"""The zoo's JSON API under /api: search, models, versions, lineage, aliases, and the two-phase upload
(`PUT /api/blobs/{sha256}` per file, streamed and verified; then `POST .../versions` publishes them atomically).

Each route parses, authorises (a dependency) and serialises (a typed response model); the rules live in the
registry service.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from registry_server import deps
from registry_server.caching import conditional_json
from registry_server.hub import hub_model_info, hub_time, hub_version
from registry_server.schemas import (
    ERRORS,
    AliasEventOut,
    AliasIn,
    AttestationIn,
    AttestationOut,
    BlobOut,
    LineageOut,
    ModelOut,
    RankingIn,
    RankingOut,
    SearchOut,
    StatusIn,
    VersionIn,
    VersionOut,
)
from zoo_core.registry.queries import parse_metric
from zoo_core.registry.service import FileSpec, RegistryService, VersionInfo, Viewer
from zoo_core.registry.uploads import owner_of

router = APIRouter(prefix="/api", responses=ERRORS)
Service = Depends(deps.service)
Reader = Depends(deps.viewer)
Writer = Depends(deps.writer)


@router.get("/search", summary="Search models with filters, metrics and lineage (zoo format)",
            response_model=SearchOut)
async def search(q: str | None = None, task: str | None = None, modality: str | None = None,
                 backbone: str | None = None, family: str | None = None, strategy: str | None = None,
                 license: str | None = None, tag: str | None = None, library: str | None = None,
                 namespace: str | None = None, metric: str | None = Query(None, description="e.g. accuracy>=0.9"),
                 documented: bool | None = Query(None, description="only models whose card is complete (true) "
                                                                   "or incomplete (false)"),
                 descendant_of: str | None = None, relation: str | None = None, reproduced: bool = False,
                 sort: str | None = Query(None, description="relevance (the default with q), updated (the "
                                                             "default without), name, or a metric's name"),
                 page: int = 1, per_page: int = 20,
                 facets: bool = Query(False, description="add each facet value's count among the matches"),
                 *, request: Request, who: Viewer = Reader, service: RegistryService = Service) -> Response:
    # like the hot reads: on the event loop when reads are local (deps.read), and SearchOut's exact shape encoded by
    # orjson (caching.conditional_json) rather than through pydantic (tests/test_api_reads.py holds the two together)
    answer = await deps.read(service, partial(
        service.search, q, viewer=who, task=task, modality=modality, backbone=backbone, family=family,
        strategy=strategy, license=license, tag=tag, library=library, namespace=namespace, documented=documented,
        metric=parse_metric(metric), descendant_of=descendant_of, relation=relation, reproduced=reproduced,
        sort=sort or ("relevance" if q else "updated"), page=page, per_page=per_page, facets=facets))
    answer.setdefault("facets", None)
    for result in answer["results"]:
        del result["created_at"]  # the service's callers (the Hub's model list) use it; SearchOut does not show it
    return conditional_json(request, answer, who)


@router.get("/models/{namespace}/{name}", response_model=ModelOut)
async def model(namespace: str, name: str, request: Request, who: Viewer = Reader,
                service: RegistryService = Service) -> Response:
    """The model: the Hub's ModelInfo at `latest` (when published) plus the zoo's summary and versions."""
    return conditional_json(request, await deps.read(service, model_answer, service, namespace, name, who), who)


def model_answer(service: RegistryService, namespace: str, name: str, who: Viewer) -> dict[str, Any]:
    model_id = f"{namespace}/{name}"
    with service.reading():  # one session for the two reads
        summary, versions = service.model_page(model_id, who)
        hub = hub_model_info(service, hub_version(service, namespace, name, "main", who, summary), who, summary)
    # the Hub's clients parse `created_at` too: every date in the client's `...Z` form
    dates = {key: hub_time(summary[key]) for key in ("created_at", "updated_at")}
    return {**hub, **summary, **dates, "versions": [version_out(v) for v in versions]}


@router.get("/models/{namespace}/{name}/versions/{revision}", response_model=VersionOut)
async def version(namespace: str, name: str, revision: str, request: Request, who: Viewer = Reader,
                  service: RegistryService = Service) -> Response:
    """A version, with a strong ETag: If-None-Match answers 304 while it is unchanged for this viewer."""
    info = await deps.read(service, service.resolve, f"{namespace}/{name}@{revision}", who)
    return conditional_json(request, version_out(info), who)


def version_out(info: VersionInfo) -> dict[str, Any]:
    """A version in VersionOut's exact shape, without pydantic's round trip (caching.conditional_json): a parent
    says whether it is hidden from the caller, also when it is not."""
    out = info.as_dict()
    out["parents"] = [{**parent, "private": parent.get("private", False)} for parent in info.parents]
    return out


@router.get("/models/{namespace}/{name}/aliases/history", response_model=list[AliasEventOut])
def alias_history(namespace: str, name: str, who: Viewer = Reader,
                  service: RegistryService = Service) -> list[dict[str, Any]]:
    return service.alias_history(f"{namespace}/{name}", who)


@router.get("/models/{namespace}/{name}/lineage/{revision}", response_model=LineageOut,
            response_model_exclude_unset=True)
def lineage(namespace: str, name: str, revision: str, direction: Literal["both", "ancestors", "descendants"] = "both",
            who: Viewer = Reader, service: RegistryService = Service) -> dict[str, Any]:
    return service.lineage(f"{namespace}/{name}@{revision}", direction, who)


@router.head("/blobs/{sha256}", summary="Whether the writer may publish these bytes without uploading them (200: "
             "stored, and uploaded by it or held by a version it can read) or not (404)")
def blob_exists(sha256: str, who: Viewer = Writer, service: RegistryService = Service) -> Response:
    return Response(status_code=200 if service.has_blob(sha256, who) else 404)


@router.put("/blobs/{sha256}", response_model=BlobOut)
async def upload(sha256: str, request: Request, path: str = Query(..., description="file name, for messages"),
                 who: Viewer = Writer, service: RegistryService = Service) -> dict[str, Any]:
    """Store one file's bytes under their sha256: streamed to disk while hashing (bounded memory), verified
    against the address and Content-Length, refused above the server's upload limit (413)."""
    declared = request.headers.get("content-length")
    with service.open_upload(path, sha256, int(declared) if declared else None,
                             request.app.state.max_upload) as blob:
        async for chunk in request.stream():
            blob.write(chunk)
        # the writer has shown it holds these bytes: it may publish them (leased before the blob is visible to gc);
        # in the thread pool: the lease is a database write, which must not hold up the event loop
        digest, size = await run_in_threadpool(
            blob.commit, lease=lambda sha256: service.record_upload(owner_of(who), sha256))
    return {"sha256": digest, "size": size}


# The writes are async routes that hand the service's call to the thread pool themselves and encode the answer with
# orjson (`written`): a sync route costs a second trip through the pool, for pydantic to serialise its answer.
@router.post("/models/{namespace}/{name}/versions", status_code=201, response_model=VersionOut)
async def publish(namespace: str, name: str, body: VersionIn, who: Viewer = Writer,
                  service: RegistryService = Service) -> Response:
    files = [FileSpec(f.path, f.sha256, f.size) for f in body.files]
    info = await run_in_threadpool(partial(
        service.publish, f"{namespace}/{name}", files, viewer=who, status=body.status, parent=body.parent,
        relation=body.relation, visibility=body.visibility, description=body.description, aliases=body.aliases))
    return written(info, 201)


@router.post("/models/{namespace}/{name}/aliases", response_model=VersionOut)
async def set_alias(namespace: str, name: str, body: AliasIn, who: Viewer = Writer,
                    service: RegistryService = Service) -> Response:
    return written(await run_in_threadpool(service.set_alias, f"{namespace}/{name}", body.alias, body.version, who))


def written(info: VersionInfo, status: int = 200) -> Response:
    """A write's answer: the version in VersionOut's exact shape (version_out), as JSON."""
    return Response(orjson.dumps(version_out(info)), status_code=status, media_type="application/json")


@router.post("/models/{namespace}/{name}/versions/{revision}/status", response_model=VersionOut)
def set_status(namespace: str, name: str, revision: str, body: StatusIn, who: Viewer = Writer,
               service: RegistryService = Service) -> dict[str, Any]:
    return service.set_status(f"{namespace}/{name}@{revision}", body.status, body.reason, who).as_dict()


@router.post("/models/{namespace}/{name}/versions/{revision}/rankings", status_code=201, response_model=RankingOut,
             summary="Record a version's transferability scores on a data set (zoo rank --record)")
def record_rank(namespace: str, name: str, revision: str, body: RankingIn, who: Viewer = Reader,
                service: RegistryService = Service) -> dict[str, Any]:
    return service.record_rank(f"{namespace}/{name}@{revision}", body.dataset, body.fingerprint, body.by,
                               body.scores, body.rank, body.of, body.examples, who)


@router.post("/models/{namespace}/{name}/versions/{revision}/attestations", status_code=201,
             response_model=AttestationOut, summary="Record a reproduction of a version (zoo reproduce --record)")
def attest(namespace: str, name: str, revision: str, body: AttestationIn, who: Viewer = Reader,
           service: RegistryService = Service) -> dict[str, Any]:
    return service.attest(f"{namespace}/{name}@{revision}", body.outcome, body.environment, body.details, who)
