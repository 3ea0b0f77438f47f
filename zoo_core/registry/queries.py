"""Lineage (one recursive query per direction) and search (filters, metrics, lineage; no N+1) over the registry."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import String, bindparam, func, literal_column, or_, text
from sqlmodel import Session, select

from zoo_core.registry.attestations import reproduced_versions
from zoo_core.registry.changes import current
from zoo_core.registry.models import LineageEdge, Model, Namespace, Version, VersionMetric
from zoo_core.registry.reads import FixedCache
from zoo_core.registry.refs import parse_ref
from zoo_core.registry.search_facets import COLUMNS, facets_and_page, facets_and_page_statement, tally
from zoo_core.registry.search_index import (
    ModelLatest,
    ModelTag,
    fts_query,
    is_plain,
    like_pattern,
    literal_match,
    matching,
    tagged,
)
from zoo_core.registry.search_page import counted_page_statement, ordered, page_ids, page_statement, result_cards
from zoo_core.registry.search_terms import (  # noqa: F401  (parse_metric and escape_like are imported from here)
    METRIC_OPS,
    check_metric_op,
    check_page,
    escape_like,
    parse_metric,
)
from zoo_core.registry.types import ADMIN, Viewer


class QueriesMixin:
    """Read-side queries of `RegistryService` (which provides `engine`, `resolve` and the row helpers)."""

    # -- lineage -----------------------------------------------------------------------------------------
    LINEAGE_SQL = {
        "ancestors": """
            WITH RECURSIVE walk(version_id, depth) AS (
                SELECT CAST(:start AS INTEGER), CAST(0 AS INTEGER)
                UNION
                SELECT e.parent_id, w.depth + 1 FROM lineageedge e JOIN walk w ON e.child_id = w.version_id
                WHERE e.parent_id IS NOT NULL AND w.depth < 1000)
            SELECT version_id, MIN(depth) FROM walk GROUP BY version_id""",
        "descendants": """
            WITH RECURSIVE walk(version_id, depth) AS (
                SELECT CAST(:start AS INTEGER), CAST(0 AS INTEGER)
                UNION
                SELECT e.child_id, w.depth + 1 FROM lineageedge e JOIN walk w ON e.parent_id = w.version_id
                WHERE w.depth < 1000)
            SELECT version_id, MIN(depth) FROM walk GROUP BY version_id""",
    }

    # PostgreSQL: the same walks with each step a LATERAL subquery that OFFSET 0 keeps from being flattened, so
    # every step is one probe of the edge index; flattened, the planner hashed the whole edge table at each of a
    # 1,000-generation chain's steps (400 ms; this: 2-5 ms)
    LINEAGE_SQL_PG = {
        "ancestors": """
            WITH RECURSIVE walk(version_id, depth) AS (
                SELECT CAST(:start AS INTEGER), CAST(0 AS INTEGER)
                UNION
                SELECT e.parent_id, w.depth + 1 FROM walk w CROSS JOIN LATERAL (
                    SELECT parent_id FROM lineageedge WHERE child_id = w.version_id AND parent_id IS NOT NULL
                    OFFSET 0) e
                WHERE w.depth < 1000)
            SELECT version_id, MIN(depth) FROM walk GROUP BY version_id""",
        "descendants": """
            WITH RECURSIVE walk(version_id, depth) AS (
                SELECT CAST(:start AS INTEGER), CAST(0 AS INTEGER)
                UNION
                SELECT e.child_id, w.depth + 1 FROM walk w CROSS JOIN LATERAL (
                    SELECT child_id FROM lineageedge WHERE parent_id = w.version_id OFFSET 0) e
                WHERE w.depth < 1000)
            SELECT version_id, MIN(depth) FROM walk GROUP BY version_id""",
    }

    @classmethod
    def lineage_sql(cls, way: str, dialect: str) -> str:
        return (cls.LINEAGE_SQL_PG if dialect == "postgresql" else cls.LINEAGE_SQL)[way]

    def lineage(self, model_ref: str, direction: str = "both", viewer: Viewer = ADMIN) -> dict[str, Any]:
        """The family graph of a version in one recursive query per direction: nodes and edges."""
        ref = parse_ref(model_ref)
        with Session(self.engine) as session:
            model, _ = self._model(session, ref, viewer)
            start = self._version(session, model, ref, viewer)
            ids: dict[int, int] = {}
            for way in (("ancestors", "descendants") if direction == "both" else (direction,)):
                sql = self.lineage_sql(way, session.get_bind().dialect.name)
                for version_id, depth in session.execute(text(sql), {"start": start.id}):
                    ids[version_id] = -depth if way == "ancestors" else depth
            # plain columns, not ORM objects: a 1,000-version family built 2,000 of them (80% of the time)
            rows = session.execute(select(Version.id, Version.number, Version.status, Version.strategy,
                                          Version.backbone, Model.name, Model.visibility, Namespace.name)
                                   .join(Model, Version.model_id == Model.id).join(Namespace)
                                   .where(Version.id.in_(list(ids)))).all()
            nodes, visible = [], set()
            for version_id, number, status, strategy, backbone, name, visibility, namespace in rows:
                if not viewer.can_see(visibility, namespace) or not viewer.can_read_version(status, namespace):
                    continue
                visible.add(version_id)
                nodes.append({"id": f"{namespace}/{name}@{number}", "version_id": version_id,
                              "depth": ids[version_id], "status": status, "strategy": strategy,
                              "backbone": backbone})
            by_id = {n["version_id"]: n["id"] for n in nodes}
            edges, externals = [], {}
            for edge in session.execute(select(LineageEdge.child_id, LineageEdge.parent_id,
                                               LineageEdge.parent_external, LineageEdge.relation)
                                        .where(LineageEdge.child_id.in_(list(visible)))):
                if edge.parent_id is not None:
                    if edge.parent_id not in by_id:
                        continue  # a parent outside the walk (another branch) or invisible to the viewer
                    parent = by_id[edge.parent_id]
                elif direction == "descendants":
                    continue  # external sources are ancestors
                else:
                    parent = edge.parent_external
                    externals.setdefault(parent, ids[edge.child_id] - 1)
                edges.append({"child": by_id[edge.child_id], "parent": parent, "relation": edge.relation})
            nodes += [{"id": ref, "external": True, "depth": depth} for ref, depth in externals.items()]
            nodes.sort(key=lambda n: (n["depth"], n["id"]))
            return {"root": f"{ref.model_id}@{start.number}", "nodes": nodes, "edges": edges}

    # -- search ------------------------------------------------------------------------------------------
    def search(self, query: str | None = None, *, viewer: Viewer = ADMIN, task: str | None = None,
               modality: str | None = None, backbone: str | None = None, family: str | None = None,
               strategy: str | None = None, license: str | None = None, tag: str | list[str] | None = None,
               library: str | None = None, namespace: str | None = None, documented: bool | None = None,
               metric: tuple[str, str, float] | None = None, descendant_of: str | None = None,
               relation: str | None = None, reproduced: bool = False, sort: str = "updated", page: int = 1,
               per_page: int = 20, facets: bool = False) -> dict[str, Any]:
        """Models whose latest version matches, with every version's aliases and metrics in the same answer;
        `facets` adds, per facet (task, modality, family, strategy, license, tag, documented), each value's count
        among the matches. Several tags are ANDed; a model's task (pipeline tag) and library count as tags, as on
        the Hub. `documented`: only models whose latest card is complete (True) or incomplete (False).
        `reproduced`: only models whose latest version someone reproduced (an attestation that says bit-identical
        or within tolerance)."""
        tags = [one.lower() for one in ([tag] if isinstance(tag, str) else tag or [])]
        filters = {name: value for name, value in (("task", task), ("modality", modality), ("backbone", backbone),
                                                   ("family", family), ("strategy", strategy), ("license", license),
                                                   ("library", library), ("namespace", namespace)) if value}
        if metric:
            check_metric_op(metric[1])
        with Session(self.engine) as session:
            dialect = session.get_bind().dialect.name
            plain = bool(query) and is_plain(query)
            # the values are bound parameters: the statement is built once per shape (which filters, which sort)
            params: dict[str, Any] = {**filters, **{f"tag{i}": one for i, one in enumerate(tags)}}
            if viewer.namespaces and not viewer.admin:
                params["namespaces"] = list(viewer.namespaces)
            if query:
                params.update({"fts": fts_query(query, dialect)} if plain else {"like": like_pattern(query)})
            if documented is not None:
                params["documented"] = documented
            if metric:
                params["metric_name"], params["metric_value"] = metric[0], metric[2]
            if relation:
                params["relation"] = relation
            if descendant_of:
                root = self.resolve(descendant_of, viewer)
                graph = self.lineage(f"{root.model_id}@{root.number}", "descendants", viewer)
                params["descendants"] = [n["version_id"] for n in graph["nodes"]
                                         if n.get("depth", 0) > 0 and "version_id" in n]
            sorts = ("name", "relevance", "updated", "created")
            if sort not in sorts:
                params["sort_metric"] = sort
            shape = (dialect, viewer.admin, bool(params.get("namespaces")), plain, bool(query) and not plain,
                     tuple(filters), len(tags), documented is not None, metric[1] if metric else None,
                     bool(descendant_of), bool(relation), reproduced, sort if sort in sorts else "metric")
            statements = self.__dict__.setdefault("_search_statements", FixedCache(256))
            built = statements.get(shape)
            if built is None:
                stmt, keys = _search_statement(*shape)
                built = (stmt, page_statement(stmt, ordered(keys), with_total=False),
                         page_statement(stmt, ordered(keys), True) if dialect == "sqlite"
                         else counted_page_statement(stmt, keys), facets_and_page_statement(stmt, keys, dialect))
                statements.put(shape, built)
            stmt, pages, pages_with_total, facets_and_pages = built
            check_page(page, per_page)
            per_page = min(per_page, 200)
            # without words, the counts cover a large share of the registry and only change with it: kept per
            # value of the database's change counter (changes.py); with words, they cover the matches only
            key = None if query else (viewer.admin, viewer.namespaces, task, modality, backbone, family, strategy,
                                      license, tuple([tag] if isinstance(tag, str) else tag or ()), library,
                                      namespace, documented, metric, descendant_of, relation, reproduced, facets)
            # the counter is read before counting: a change committed meanwhile leaves an entry nobody asks for
            # again (the counter has moved), never an old answer under the new counter
            counter = current(session.connection()) if key is not None else None
            kept = self._counts_cache().get((counter, *key)) if counter is not None else None
            connection = session.connection()
            if kept is not None:
                total, counts = kept
                _, ids = page_ids(connection, pages, stmt, params, page, per_page, with_total=False)
            elif facets and not any((query, task, modality, backbone, family, strategy, license, tag, library,
                                     namespace, documented is not None, metric, descendant_of, relation, reproduced)):
                total, counts = _count_everything(session, stmt, params, viewer)
                _, ids = page_ids(connection, pages, stmt, params, page, per_page, with_total=False)
            elif facets:  # the counts, the total and the page over the matches found once (search_facets.py)
                total, counts, ids = facets_and_page(connection, facets_and_pages, params, page, per_page)
            else:
                counts = None
                total, ids = page_ids(connection, pages_with_total, stmt, params, page, per_page, with_total=True)
            if kept is None and counter is not None:
                self._counts_cache().put((counter, *key), (total, counts))
            # every version of the page's models in one query, their metrics from the cache (reads.py)
            results = result_cards(connection, ids, viewer, lambda rows: {
                i: dict(fixed.metrics) for i, fixed in self._fixed(session, rows).items()})
            answer = {"total": total, "page": page, "per_page": per_page, "results": results}
            if counts is not None:
                answer["facets"] = counts
            return answer

    def _counts_cache(self) -> FixedCache:
        # search totals and facet counts by (change counter, viewer, filters): fixed once the counter is in the key
        return self.__dict__.setdefault("_counts", FixedCache(256))

    def metric_names(self) -> list[str]:
        """Every metric name versions report, for sort menus: one probe of the (name, value) index per name (a
        DISTINCT read all 200,000 rows of 100,000 versions, half the home page's time)."""
        with Session(self.engine) as session:
            return sorted(name for (name,) in session.execute(text(METRIC_NAMES)) if name is not None)




def _search_statement(dialect: str, admin: bool, namespaces: bool, plain: bool, literal: bool,
                      filters: tuple[str, ...], tags: int, documented: bool, metric_op: str | None,
                      descendants: bool, relation: bool, reproduced: bool, sort: str):
    """Search's statement over `model_latest` (its version ids) and its sort keys, for one shape of search: every value
    is a bound parameter named in `search`. Building it cost more than running it on SQLite (a third of a search of
    100 models), so `search` keeps it per shape."""
    latest = ModelLatest
    # on SQLite a filter's column stays off its index (a unary +): the plan is the text index's matches
    # or the walk down `updated_at`, never a facet index (task=... that way: 20 -> 270 ms, each of its
    # rows then probing the text index)
    col = (lambda c: literal_column(f"+model_latest.{c.name}", c.type)) if dialect == "sqlite" else (lambda c: c)
    stmt = select(latest.version_id)
    if not admin:
        visible = col(latest.visibility) == "public"
        stmt = stmt.where(or_(visible, col(latest.namespace).in_(bindparam("namespaces", expanding=True)))
                          if namespaces else visible)
    rank = None
    if plain:  # full-text, ranked (search_index.py)
        stmt, rank = matching(stmt, dialect, latest.model_id)
    elif literal:  # other characters (50%, off_sale): literal text
        stmt = (stmt.join(Model, Model.id == latest.model_id).join(Version, Version.id == latest.version_id)
                .where(literal_match((latest.name, latest.namespace, Model.description, Version.card))))
    for name in filters:
        stmt = stmt.where(col(getattr(latest, name)) == bindparam(name))
    for i in range(tags):
        one = bindparam(f"tag{i}", type_=String())
        stmt = stmt.where(or_(tagged(one, latest.model_id), func.lower(latest.task) == one,
                              func.lower(latest.library) == one))
    if documented:
        stmt = stmt.where(col(latest.card_complete) == bindparam("documented"))
    if metric_op:
        # EXISTS, one primary-key probe per candidate: an IN list would first collect every version
        # passing the filter (20,000 of 100,000 for accuracy>=0.9), twice as slow under a text query
        stmt = stmt.where(select(VersionMetric.version_id).where(
            VersionMetric.version_id == latest.version_id, VersionMetric.name == bindparam("metric_name"),
            getattr(VersionMetric.value, METRIC_OPS[metric_op])(bindparam("metric_value"))).exists())
    if descendants or relation:
        edges = select(LineageEdge.child_id)
        if relation:
            edges = edges.where(LineageEdge.relation == bindparam("relation"))
        if descendants:
            edges = edges.where(LineageEdge.child_id.in_(bindparam("descendants", expanding=True)))
        stmt = stmt.where(latest.version_id.in_(edges))
    if reproduced:
        stmt = stmt.where(latest.version_id.in_(reproduced_versions()))
    # the order as (expression, descending, nulls last) keys (search_page.ordered): also sorted over a CTE
    if sort == "name":
        keys = ((latest.namespace, False, False), (latest.name, False, False))
    elif sort == "relevance" and rank is not None:  # best match first
        keys = ((rank, False, False), (latest.updated_at, True, False), (latest.model_id, True, False))
    elif sort in ("updated", "relevance"):
        keys = ((latest.updated_at, True, False), (latest.model_id, True, False))
    elif sort == "created":
        keys = ((latest.created_at, True, False), (latest.model_id, True, False))
    else:  # a metric, best first
        value = (select(VersionMetric.value).where(VersionMetric.version_id == latest.version_id,
                                                   VersionMetric.name == bindparam("sort_metric"))
                 .scalar_subquery())
        keys = ((value, True, True), (latest.name, False, False))
    return stmt, keys


# the next name after the one before, from the index, until there is none
METRIC_NAMES = """WITH RECURSIVE names(name) AS (
                      SELECT MIN(name) FROM versionmetric
                      UNION ALL
                      SELECT (SELECT MIN(v.name) FROM versionmetric v WHERE v.name > names.name) FROM names
                      WHERE names.name IS NOT NULL)
                  SELECT name FROM names"""


def _count_everything(session: Session, stmt, params: dict[str, Any], viewer: Viewer
                      ) -> tuple[int, dict[str, list[tuple[str, int]]]]:
    """The total and facet counts (search_facets.tally) of `stmt`, every model `viewer` may see, from indexes: a
    GROUP BY over the facet columns' index, and all tags from the tag index less those of the models hidden from
    the viewer (joining 300,000 tags of 100,000 models to their visibility took 300 ms on SQLite; this, 15)."""
    latest = ModelLatest
    tag_counts = select(ModelTag.tag, func.count()).group_by(ModelTag.tag)
    rows = [(0, *row) for row in session.execute(stmt.with_only_columns(*COLUMNS, func.count())
                                                 .group_by(*COLUMNS), params)]
    tags = Counter(dict(session.execute(tag_counts).all()))
    if not viewer.admin:
        hidden = select(latest.model_id).where(latest.visibility != "public",
                                               latest.namespace.not_in(list(viewer.namespaces)))
        tags.subtract(dict(session.execute(tag_counts.where(ModelTag.model_id.in_(hidden))).all()))
        tags = +tags  # without the tags only hidden models carry
    return tally(rows, tags)

