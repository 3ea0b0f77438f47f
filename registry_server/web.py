"""The web catalog: server-rendered Jinja2 pages over the same registry service as the JSON API.

Pages: `/` (search with facets, sort, pagination), `/{ns}/{name}` and `/{ns}/{name}/v/{rev}` (model card, metadata,
versions, files, snippets), `/{ns}/{name}/v/{rev}/lineage` (family graph as SVG), `/compare?a=REF&b=REF` and
`/plugins`. Every page works without JavaScript; templates live in the top-level `templates/` folder (shipped inside
the wheel as registry_server/templates).
"""

from __future__ import annotations

import fnmatch
import json
import re
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from registry_server import deps
from registry_server.graph import layout
from registry_server.lineage_markup import family_rows, svg_items
from registry_server.render import card_html
from zoo_core import plugin_report
from zoo_core.errors import NotFoundError, ZooError
from zoo_core.registry.refs import RESERVED_NAMESPACES
from zoo_core.registry.service import RegistryService, VersionInfo, Viewer

FACET_TITLES = {"task": "Task", "modality": "Modality", "family": "Backbone family", "strategy": "Strategy",
                "license": "License", "tag": "Tags", "documented": "Card complete"}
PER_PAGE = 20


def templates_dir() -> Path:
    """Inside the wheel the templates sit next to this module; in a source checkout, at the top level."""
    packaged = Path(__file__).parent / "templates"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "templates"


def create_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(templates_dir()))
    templates.env.filters.update(filesize=filesize, day=lambda iso: (iso or "")[:10], metric=format_metric)
    templates.env.globals["version_link"] = version_link
    return templates


VERSION_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*@[0-9]+")


def version_link(ref: str | None) -> str | None:
    """The catalog page of a parent that is a version of this registry (`ns/name@3`); None for anything else. A
    card's `base_model` is free text: `\\evil.example@x` must stay text, not become `/\\evil.example/v/x`, which
    browsers read as a link to another site."""
    if not isinstance(ref, str) or not VERSION_REF.fullmatch(ref):
        return None
    return version_url(ref)


def filesize(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return ""


def format_metric(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}".rstrip("0").rstrip(".") if value != int(value) else str(value)


def best_metric(metrics: dict[str, float]) -> tuple[str, float] | None:
    """The headline metric of a result card: accuracy when reported, else the first that is not a loss."""
    if "accuracy" in metrics:
        return "accuracy", metrics["accuracy"]
    named = sorted((k, v) for k, v in metrics.items() if "loss" not in k)
    return named[0] if named else None


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """A recipe as `data.args.path -> value` rows, so two recipes can be compared line by line."""
    if isinstance(data, dict):
        out: dict[str, str] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(data, list) and any(isinstance(x, dict | list) for x in data):
        out = {}
        for i, value in enumerate(data):
            out.update(flatten(value, f"{prefix}[{i}]"))
        return out
    return {prefix: json.dumps(data) if not isinstance(data, str) else data}


_plugins: dict[str, Any] = {}
_plugins_lock = threading.Lock()


def plugin_listing() -> tuple[dict[str, Any], str | None]:
    """(what the installed plugins contribute, None) or ({}, why it could not be listed). Computed in a child
    process (the model code stays out of the server) on the first visit, then kept: plugins cannot change while
    the server runs. A failure is not kept, so the next visit tries again."""
    with _plugins_lock:  # one child process, however many visitors arrive at once
        if not _plugins:
            try:
                _plugins.update(plugin_report.from_subprocess())
            except ZooError as exc:
                return {}, str(exc)
        return _plugins, None


router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)
Service = Depends(deps.service)
Reader = Depends(deps.viewer)


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return request.app.state.templates.TemplateResponse(request, name, context, status_code=status)


def not_found(request: Request, message: str) -> HTMLResponse:
    return render(request, "error.html", status=404, message=message,
                  search_for=request.url.path.strip("/").split("/")[-1] or None)


@router.get("/")
def home(request: Request, q: str | None = None, task: str | None = None, modality: str | None = None,
         family: str | None = None, strategy: str | None = None, license: str | None = None,
         tag: str | None = None, documented: str | None = None, sort: str = "updated", page: int = 1,
         per_page: int = PER_PAGE, who: Viewer = Reader, service: RegistryService = Service) -> HTMLResponse:
    page_number = max(1, page)
    per_page = max(1, min(per_page, 100))
    documented = documented if documented in ("yes", "no") else None
    filters = {"task": task, "modality": modality, "family": family, "strategy": strategy,
               "license": license, "tag": tag, "documented": documented}
    query = {**filters, "documented": None if documented is None else documented == "yes"}
    metrics = [m for m in service.metric_names() if "loss" not in m]
    if sort not in ("updated", "name", *metrics):
        sort = "updated"
    try:
        found = service.search(q or None, viewer=who, sort=sort, page=page_number, per_page=per_page,
                               facets=True, **query)
    except ZooError as exc:
        return render(request, "home.html", status=400, error=str(exc), found=None, filters=filters, q=q,
                      sort=sort, metrics=metrics, url_with=lambda **_: "/", titles=FACET_TITLES)
    current = {k: v for k, v in {"q": q, **filters, "sort": sort if sort != "updated" else None,
                                 "per_page": per_page if per_page != PER_PAGE else None}.items() if v}

    def url_with(**changes: Any) -> str:  # the current search with some parameters changed; page 1 unnamed
        params = {**current, **changes}
        return "/?" + urlencode({k: v for k, v in params.items() if v not in (None, "") and (k, v) != ("page", 1)})

    for result in found["results"]:
        result["headline"] = best_metric(result["metrics"])
        result["aliases"] = sorted(a for v in result["versions"] for a in v["aliases"] if a != "latest")
    pages = max(1, -(-found["total"] // per_page))
    return render(request, "home.html", found=found, filters=filters, q=q or "", sort=sort, metrics=metrics,
                  url_with=url_with, titles=FACET_TITLES, pages=pages, page_number=page_number, error=None,
                  per_page=per_page)


BACKBONES_PER_PAGE = 100


def matching_backbones(backbones: list[dict[str, Any]], q: str | None, plugin: str | None,
                       modality: str | None) -> list[dict[str, Any]]:
    """The backbones a /plugins filter keeps: `q` a wildcard on the name ('convnext*'), else a substring of the name
    or the family, case-insensitive."""
    text = (q or "").strip().lower()
    wildcard = any(ch in text for ch in "*?[")

    def keep(b: dict[str, Any]) -> bool:
        name = str(b.get("name", "")).lower()
        if text and not (fnmatch.fnmatchcase(name, text) if wildcard
                         else text in name or text in str(b.get("family", "")).lower()):
            return False
        return (not plugin or b.get("plugin") == plugin) and (not modality or b.get("modality") == modality)

    return [b for b in backbones if keep(b)]


@router.get("/plugins")
def plugins(request: Request, q: str | None = None, plugin: str | None = None, modality: str | None = None,
            page: int = 1) -> HTMLResponse:
    """What the plugins contribute; the backbones (zoo-timm alone brings over a thousand) filtered and paged."""
    listing, problem = plugin_listing()
    backbones = listing.get("backbones", [])
    shown = matching_backbones(backbones, q, plugin, modality)
    pages = max(1, -(-len(shown) // BACKBONES_PER_PAGE))
    page_number = min(max(1, page), pages)
    current = {"q": q, "plugin": plugin, "modality": modality}

    def url_with(**changes: Any) -> str:
        params = {**current, **changes}
        query = urlencode({k: v for k, v in params.items() if v not in (None, "") and (k, v) != ("page", 1)})
        return "/plugins" + (f"?{query}" if query else "") + "#backbones"

    start = (page_number - 1) * BACKBONES_PER_PAGE
    return render(request, "plugins.html", problem=problem, **{**listing, "backbones": shown[start:start +
                  BACKBONES_PER_PAGE]}, matched=len(shown), total=len(backbones), first=start + 1, name_filter=q or "",
                  plugin=plugin or "", modality=modality or "", pages=pages, page_number=page_number,
                  url_with=url_with, plugin_names=sorted({str(b.get("plugin")) for b in backbones}),
                  modalities=sorted({str(b.get("modality")) for b in backbones}))


@router.get("/compare")
def compare(request: Request, a: str | None = None, b: str | None = None,
            who: Viewer = Reader, service: RegistryService = Service) -> HTMLResponse:
    if not a or not b:
        return render(request, "compare.html", a=a or "", b=b or "", sides=None, error=None)
    sides = []
    try:
        for ref in (a, b):
            info = service.resolve(ref.strip(), who)
            sides.append({"ref": f"{info.model_id}@{info.number}", "info": info,
                          "recipe": flatten(service.version_recipe(info) or {})})
    except NotFoundError as exc:
        return not_found(request, str(exc))
    except ZooError as exc:
        return render(request, "compare.html", status=400, a=a, b=b, sides=None, error=str(exc))
    left, right = sides[0]["recipe"], sides[1]["recipe"]
    keys = sorted(set(left) | set(right))
    rows = [{"key": k, "a": left.get(k), "b": right.get(k), "differs": left.get(k) != right.get(k)} for k in keys]
    metric_names = sorted(set(sides[0]["info"].metrics) | set(sides[1]["info"].metrics))
    return render(request, "compare.html", a=a, b=b, sides=sides, error=None, metric_names=metric_names,
                  differing=[r for r in rows if r["differs"]], same=[r for r in rows if not r["differs"]])


@router.get("/{namespace}/{name}")
def model_latest(request: Request, namespace: str, name: str,
                 who: Viewer = Reader, service: RegistryService = Service) -> HTMLResponse:
    return model_page(request, namespace, name, None, who, service)


@router.get("/{namespace}/{name}/v/{revision}")
def model_version(request: Request, namespace: str, name: str, revision: str,
                  who: Viewer = Reader, service: RegistryService = Service) -> HTMLResponse:
    return model_page(request, namespace, name, revision, who, service)


def model_page(request: Request, namespace: str, name: str, revision: str | None, who: Viewer,
               service: RegistryService) -> HTMLResponse:
    if namespace.lower() in RESERVED_NAMESPACES:  # /api/<unknown>: the app's 404, JSON for API clients
        raise HTTPException(404)
    model_id = f"{namespace}/{name}"
    try:
        summary = service.model_summary(model_id, who)
        versions = service.versions(model_id, who)
        info = service.resolve(f"{model_id}@{revision}", who) if revision is not None else \
            service.default_version(model_id, who, versions)
        if info is None:
            return not_found(request, f"{model_id} has no versions yet")
    except ZooError as exc:  # no such model or version, or a malformed revision: nothing to show
        return not_found(request, str(exc))
    metadata, body = card_html(info.card or "")
    base = str(request.base_url).rstrip("/")
    previous = max((v.number for v in versions if v.number < info.number), default=None)
    return render(request, "model.html", model=summary, info=info, versions=versions, card=body,
                  metadata=side_panel(metadata), results=model_index(metadata), base=base,
                  snippets=snippets(base, info, summary.get("modality")), previous=previous)


@router.get("/{namespace}/{name}/v/{revision}/lineage")
def lineage(request: Request, namespace: str, name: str, revision: str,
            who: Viewer = Reader, service: RegistryService = Service) -> HTMLResponse:
    try:
        graph = service.lineage(f"{namespace}/{name}@{revision}", "both", who)
    except ZooError as exc:
        return not_found(request, str(exc))
    placed = layout(graph, href=version_url)
    return render(request, "lineage.html", graph=graph, layout=placed, svg_items=svg_items(placed),
                  family_rows=family_rows(graph, version_url), root=graph["root"], version_url=version_url)


@router.get("/{namespace}/{name}/v")
def versions_redirect(namespace: str, name: str) -> RedirectResponse:
    return RedirectResponse(f"/{namespace}/{name}", status_code=307)


def version_url(ref: str) -> str:
    model_id, _, number = ref.partition("@")
    return f"/{model_id}/v/{number}" if number else f"/{model_id}"


def side_panel(metadata: dict[str, Any]) -> list[tuple[str, str]]:
    """The card's YAML metadata as label/value rows (model-index is shown as the results table instead)."""
    rows = []
    for key, value in metadata.items():
        if key == "model-index" or value in (None, "", [], {}):
            continue
        if isinstance(value, list):
            value = ", ".join(str(v) if not isinstance(v, dict | list) else json.dumps(v) for v in value)
        elif isinstance(value, dict):
            value = json.dumps(value)
        rows.append((key, str(value)))
    return rows


def model_index(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """The card's model-index results, flattened to one row per metric."""
    rows = []
    for entry in metadata.get("model-index") or []:
        for result in (entry or {}).get("results") or []:
            dataset = (result.get("dataset") or {})
            for metric in result.get("metrics") or []:
                rows.append({"dataset": dataset.get("name"), "split": dataset.get("split"),
                             "metric": metric.get("type"), "value": metric.get("value")})
    return rows


def snippets(base: str, info: VersionInfo, modality: str | None) -> dict[str, str]:
    ref = f"{info.model_id}@{info.number}"
    example = '"A moving, beautifully acted film."' if modality == "text" else '"chest-xray.png"'
    return {
        "Python": f'import zoo_core\n\nmodel = zoo_core.load("{ref}", registry="{base}")\n'
                  f"print(model.predict([{example}]))",
        "CLI": f"zoo pull {ref} ./{info.model_id.split('/')[1]} --registry {base}\n"
               f"zoo predict ./{info.model_id.split('/')[1]} {example if modality != 'text' else 'reviews.txt'}",
        "huggingface_hub": f"from huggingface_hub import snapshot_download\n\n"
                           f'path = snapshot_download("{info.model_id}", revision="v{info.number}",\n'
                           f'                         endpoint="{base}")',
    }
