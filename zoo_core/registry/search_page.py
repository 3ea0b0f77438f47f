"""A page of search results in two Core queries: the page's (model, latest version) ids in the search's order, then
every version of those models with its model's columns and its aliases in the same rows. Plain rows, no ORM objects:
with the ORM (the page's models, namespaces and versions as objects, then their versions and aliases in two more
queries) a search of 100 models cost 1.5 ms of CPU, most of it building and loading objects, not in SQLite.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, case, func
from sqlalchemy import select as core_select
from sqlalchemy.engine import Connection

from zoo_core.registry.reads import _ALIASES, MT, NS, NT, VT, M, V
from zoo_core.registry.search_index import ModelLatest
from zoo_core.registry.types import Viewer

_TOP = V.id.in_(bindparam("latest", expanding=True))  # the row of a result's latest version


def _top(column):
    """`column` on a result's latest version's row only (NULL on the others): what the result shows of its latest
    version, and its model's columns that need decoding (JSON, dates), are read once per model, not per version."""
    return case((_TOP, column)).label(column.key)


# every version of the page's models (oldest first), each row with its model's columns and its aliases
VERSIONS_OF_PAGE = (core_select(V.id, V.model_id, V.number, V.status, V.commit, V.backbone, V.family, V.strategy,
                                V.library, V.card_complete, _top(V.card_missing), _ALIASES.label("aliases"),
                                NS.name.label("namespace"), M.name, M.task, M.modality, M.description, M.license,
                                _top(M.tags), M.visibility, _top(M.created_at), _top(M.updated_at))
                    .select_from(VT.join(MT, V.model_id == M.id).join(NT, M.namespace_id == NS.id))
                    .where(V.model_id.in_(bindparam("ids", expanding=True))).order_by(V.number))


def ordered(keys, columns=None) -> list:
    """ORDER BY clauses of sort `keys` ((expression, descending, nulls last) each); `columns`: stand-ins for the
    expressions, in the same order (a CTE's columns)."""
    clauses = []
    for i, (expression, descending, nulls_last) in enumerate(keys):
        clause = expression if columns is None else columns[i]
        clause = clause.desc() if descending else clause
        clauses.append(clause.nulls_last() if nulls_last else clause)
    return clauses


def counted_page_statement(stmt, keys):
    """`page_statement(stmt, ordered(keys), with_total=True)` for PostgreSQL: the matches found once (a
    materialised CTE), then counted and sorted. With the count as a window beside a LIMIT, the planner walked the
    sort's index through all 100,000 models testing each one's document (40-50 ms for a text query, where the GIN
    index finds and counts its 8,000 matches in 8-12)."""
    matches = (stmt.with_only_columns(ModelLatest.model_id, ModelLatest.version_id,
                                      *[expression.label(f"k{i}") for i, (expression, _, _) in enumerate(keys)])
               .cte("matches").prefix_with("MATERIALIZED"))
    total = core_select(func.count()).select_from(matches).scalar_subquery()
    return (core_select(matches.c.model_id, matches.c.version_id, total)
            .order_by(*ordered(keys, [matches.c[f"k{i}"] for i in range(len(keys))]))
            .offset(bindparam("offset")).limit(bindparam("limit")))


def page_statement(stmt, order, with_total: bool):
    """`stmt`'s page in `order` (bound parameters `offset` and `limit`) as (model id, latest version id) rows:
    narrow rows sort fast (8,000 text matches in half the time of full rows). With `with_total`, the number of
    matches rides along as a window count."""
    narrow = stmt.with_only_columns(ModelLatest.model_id, ModelLatest.version_id,
                                    *([func.count().over()] if with_total else []))
    return narrow.order_by(*order).offset(bindparam("offset")).limit(bindparam("limit"))


def page_ids(connection: Connection, pages, stmt, params: dict[str, Any], page: int, per_page: int,
             with_total: bool) -> tuple[int | None, list[tuple[int, int]]]:
    """(total or None, [(model id, latest version id)]) of a page of `pages` (`page_statement(stmt, ...,
    with_total)`; `params`: the values of their bound parameters). A page past the end: a count of its own."""
    picked = connection.execute(pages, {**params, "offset": (page - 1) * per_page, "limit": per_page}).all()
    ids = [(row[0], row[1]) for row in picked]
    if not with_total:
        return None, ids
    if picked:
        return picked[0][2], ids
    return connection.execute(core_select(func.count()).select_from(stmt.subquery()), params).scalar_one(), ids


def result_cards(connection: Connection, ids: list[tuple[int, int]], viewer: Viewer, metrics_of) -> list[dict]:
    """The search's result for each (model id, latest version id) of `ids`, in that order: the model, its latest
    version's facts and metrics, and every version the viewer may read with its aliases and metrics.
    `metrics_of(rows)`: {version id: metrics} of version rows (the registry's cache of what commits fix)."""
    if not ids:
        return []
    rows = connection.execute(VERSIONS_OF_PAGE, {"ids": [model_id for model_id, _ in ids],
                                                 "latest": [version_id for _, version_id in ids]}).all()
    metrics = metrics_of(rows)
    versions: dict[int, list[Any]] = {}
    latest: dict[int, Any] = {}
    for row in rows:
        versions.setdefault(row.model_id, []).append(row)
        latest[row.id] = row
    results = []
    for model_id, version_id in ids:
        top = latest[version_id]
        results.append({
            "id": f"{top.namespace}/{top.name}", "task": top.task, "modality": top.modality,
            "description": top.description, "license": top.license, "tags": top.tags,
            "visibility": top.visibility, "updated_at": top.updated_at.isoformat(),
            "latest": top.number, "backbone": top.backbone, "family": top.family,
            "strategy": top.strategy, "metrics": metrics.get(top.id, {}),
            "created_at": top.created_at.isoformat(), "library": top.library,
            "card_complete": top.card_complete, "card_missing": list(top.card_missing or []),
            "versions": [{"number": v.number, "status": v.status,
                          "aliases": sorted(v.aliases.split(",")) if v.aliases else [],
                          "metrics": metrics.get(v.id, {})} for v in versions[model_id]
                         if viewer.can_read_version(v.status, top.namespace)],
        })
    return results
