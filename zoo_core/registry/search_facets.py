"""A search's facet counts and its page in one statement, over its matches found once.

At 100,000 models a text query matches some 8,000 of them, and finding them (the full-text index, then each
match's `model_latest` row and, with a metric filter, its metric) is nearly all of a search's time: done once for
the counts and again for the page, it was paid twice. Here the matches are a materialised CTE read by three
branches of one UNION ALL: the groups of the facet columns' values (a few hundred, summed per facet in Python,
which also gives the total), the tags of the matches (see facets_and_page_statement), and the
page (the matches in the search's order, each with its position: rows of a UNION ALL come in no promised order).
On SQLite the SQL of a text query with a metric filter and counts took 26.5 ms of CPU instead of 45 (100,000
models, the old and new statements interleaved on one database).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import Integer, bindparam, func, literal, literal_column, null, union_all
from sqlalchemy.engine import Connection
from sqlmodel import select

from zoo_core.registry.search_index import ModelLatest, ModelTag
from zoo_core.registry.search_page import ordered

FACETS = ("task", "modality", "family", "strategy", "license", "tag", "documented")
# model_latest's columns of the facets above but tag and documented, then documented's (card_complete)
COLUMNS = (ModelLatest.task, ModelLatest.modality, ModelLatest.family, ModelLatest.strategy, ModelLatest.license,
           ModelLatest.card_complete)
GROUPS, TAGS, PAGE = 0, 1, 2  # the UNION ALL's branches, its first column


def facets_and_page_statement(stmt, keys, dialect: str):
    """The one statement of `facets_and_page` for `stmt` (a search over `model_latest`, bound parameters and all)
    sorted by `keys`; its own bound parameters `offset` and `limit` pick the page. On PostgreSQL the tags are
    counted from model_latest's copy of them (an array: search_index.index_latest), on SQLite from the tag table
    (one probe of its primary key a match: faster there than reading a JSON list)."""
    latest = ModelLatest
    tag_list = [literal_column("model_latest.tags").label("tags")] if dialect == "postgresql" else []
    matches = (stmt.with_only_columns(latest.model_id, latest.version_id, *COLUMNS, *tag_list,
                                      *[expression.label(f"k{i}") for i, (expression, _, _) in enumerate(keys)])
               .cte("matches").prefix_with("MATERIALIZED"))
    facet_columns = [matches.c[column.key] for column in COLUMNS]
    order = ordered(keys, [matches.c[f"k{i}"] for i in range(len(keys))])
    page = (select(matches.c.model_id, matches.c.version_id,
                   func.row_number().over(order_by=order).label("position"))
            .order_by(*order).offset(bindparam("offset")).limit(bindparam("limit")).subquery("page"))
    nothing = null().cast(Integer)
    if tag_list:
        tags = select(func.unnest(matches.c.tags).label("tag")).subquery("tags")
        tag_counts = select(literal(TAGS), tags.c.tag, *[null()] * (len(COLUMNS) - 1), func.count(), nothing,
                            nothing).group_by(tags.c.tag)
    else:
        tag_counts = (select(literal(TAGS), ModelTag.tag, *[null()] * (len(COLUMNS) - 1), func.count(), nothing,
                             nothing).where(ModelTag.model_id.in_(select(matches.c.model_id))).group_by(ModelTag.tag))
    return union_all(
        select(literal(GROUPS), *facet_columns, func.count(), nothing, nothing).group_by(*facet_columns),
        tag_counts,
        select(literal(PAGE), *[null()] * len(COLUMNS), page.c.position, page.c.model_id, page.c.version_id))


def facets_and_page(connection: Connection, statement, params: dict[str, Any], page: int, per_page: int
                    ) -> tuple[int, dict[str, list[tuple[str, int]]], list[tuple[int, int]]]:
    """(total, facet counts as `tally` gives them, [(model id, latest version id)] of the page) in one statement
    (`facets_and_page_statement`; `params`: its bound parameters but the page's)."""
    rows = connection.execute(statement, {**params, "offset": (page - 1) * per_page, "limit": per_page}).all()
    picked = sorted((row[-3], row[-2], row[-1]) for row in rows if row[0] == PAGE)
    total, counts = tally([row[:-2] for row in rows if row[0] != PAGE])
    return total, counts, [(model_id, version_id) for _, model_id, version_id in picked]


def tally(rows, tags: Counter | None = None) -> tuple[int, dict[str, list[tuple[str, int]]]]:
    """(number of matches, {facet: [(value, count)], most common first}) from rows (branch, *COLUMNS' values,
    count): GROUPS rows count the facet columns' combinations, TAGS rows a tag (in the first value). `tags`: the
    tags' counts when counted elsewhere."""
    counters: dict[str, Counter] = {facet: Counter() for facet in FACETS}
    if tags is not None:
        counters["tag"] = tags
    total = 0
    for kind, *values, complete, count in rows:
        if kind == TAGS:
            counters["tag"][values[0]] += count
            continue
        total += count
        for facet, value in zip(FACETS, values, strict=False):
            if value:
                counters[facet][value] += count
        counters["documented"]["yes" if complete else "no"] += count
    return total, {facet: sorted(c.items(), key=lambda kv: (-kv[1], kv[0])) for facet, c in counters.items()}
