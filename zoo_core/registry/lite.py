"""Read-only answers from a local SQLite registry through the standard library's sqlite3, for the CLI: `zoo
search`, `zoo versions` and `zoo show` on an embedded registry then start without SQLAlchemy, SQLModel or the ORM
models (importing them cost 0.55 s of CPU, the interpreter 0.02 s). The answers are the service's
(`RegistryService.search`, `.versions`, `.resolve`), field for field; tests/test_cli_lite.py holds the two together
over every filter this path takes and every version of its registry.

`open_lite` returns None whenever this path does not apply, and the caller takes the full one: a server URL,
tables elsewhere (ZOO_DATABASE_URL), a registry not created yet or not at the migrations' head (the full path
creates or migrates it), and searches this path leaves to the service (literal text such as `50%`, lineage
filters, `--reproduced`).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zoo_core.errors import ZooError
from zoo_core.registry.heads import head_revisions
from zoo_core.registry.refs import parse_ref, revision_key
from zoo_core.registry.search_terms import (
    METRIC_OPS,
    SQLITE_HITS,
    check_metric_op,
    check_page,
    is_plain,
    sqlite_match,
)
from zoo_core.registry.types import RANKINGS_SHOWN, VersionInfo

# the SQL of each operator (METRIC_OPS names the same five for the service's expressions)
_SQL_OPS = {op: op for op in METRIC_OPS}
# model_latest's filter columns, each kept off its index with a unary + as the service does (queries.py: the plan
# is the text index's matches or the walk down `updated_at`, never a facet index)
_FILTERS = ("task", "modality", "backbone", "family", "strategy", "license", "library", "namespace")


def open_lite(location: str | None) -> LiteRegistry | None:
    """The local registry at `location` (default: the settings' registry) for reading, or None (see above)."""
    from zoo_core.settings import get_settings

    settings = get_settings()
    location = location if location is not None else settings.registry
    scheme, sep, rest = str(location).partition("://")
    if sep and scheme.lower() != "file":
        return None
    if settings.database_url:
        return None
    database = Path(rest if sep else location).expanduser().resolve() / "registry.db"
    if not database.is_file():
        return None
    connection = sqlite3.connect(database, timeout=30)
    try:
        connection.execute("PRAGMA query_only=ON")  # this path never writes
        current = {row[0] for row in connection.execute("SELECT version_num FROM alembic_version")}
    except sqlite3.DatabaseError:
        connection.close()
        return None
    if not current or current != head_revisions():
        connection.close()
        return None
    return LiteRegistry(connection)


class LiteRegistry:
    """The read-only part of `Registry` that this path answers, for the embedded registry's viewer (its
    administrator: every model and version is visible)."""

    def __init__(self, connection: sqlite3.Connection):
        self.db = connection

    def search(self, query: str | None = None, *, task: str | None = None, modality: str | None = None,
               backbone: str | None = None, family: str | None = None, strategy: str | None = None,
               license: str | None = None, tag: str | list[str] | None = None, library: str | None = None,
               namespace: str | None = None, documented: bool | None = None,
               metric: tuple[str, str, float] | None = None, descendant_of: str | None = None,
               relation: str | None = None, reproduced: bool | None = None, sort: str = "updated", page: int = 1,
               per_page: int = 20) -> dict[str, Any] | None:
        """`RegistryService.search`'s answer (without facets), or None when the service must answer."""
        if (query and not is_plain(query)) or descendant_of or relation or reproduced:
            return None
        joins, where, params = [], [], {}
        if query:
            joins.append(f"JOIN ({SQLITE_HITS}) hits ON hits.model_id = ml.model_id")
            params["fts"] = sqlite_match(query)
        values = dict(zip(_FILTERS, (task, modality, backbone, family, strategy, license, library, namespace),
                          strict=True))
        for column, value in values.items():
            if value:
                where.append(f"+ml.{column} = :{column}")
                params[column] = value
        for i, one in enumerate([tag] if isinstance(tag, str) else tag or []):
            where.append(f"(EXISTS (SELECT 1 FROM model_tag t WHERE t.model_id = ml.model_id AND t.tag = :tag{i}) "
                         f"OR lower(ml.task) = :tag{i} OR lower(ml.library) = :tag{i})")
            params[f"tag{i}"] = one.lower()
        if documented is not None:
            where.append("+ml.card_complete = :documented")
            params["documented"] = int(documented)
        if metric:
            name, op, value = metric
            check_metric_op(op)
            where.append("EXISTS (SELECT 1 FROM versionmetric m WHERE m.version_id = ml.version_id "
                         f"AND m.name = :metric_name AND m.value {_SQL_OPS[op]} :metric_value)")
            params.update(metric_name=name, metric_value=value)
        if sort == "name":
            order = "ml.namespace, ml.name"
        elif sort == "relevance" and query:
            order = "hits.rank, ml.updated_at DESC, ml.model_id DESC"
        elif sort in ("updated", "relevance"):
            order = "ml.updated_at DESC, ml.model_id DESC"
        elif sort == "created":
            order = "ml.created_at DESC, ml.model_id DESC"
        else:  # a metric, best first
            order = ("(SELECT m.value FROM versionmetric m WHERE m.version_id = ml.version_id AND m.name = :sort) "
                     "DESC NULLS LAST, ml.name")
            params["sort"] = sort
        check_page(page, per_page)
        per_page = min(per_page, 200)
        matches = f"FROM model_latest ml {' '.join(joins)} {'WHERE ' + ' AND '.join(where) if where else ''}"
        picked = self.db.execute(f"SELECT ml.version_id, count(*) OVER () {matches} ORDER BY {order} "
                                 "LIMIT :limit OFFSET :offset",
                                 {**params, "limit": per_page, "offset": (page - 1) * per_page}).fetchall()
        ids = [row[0] for row in picked]
        total = picked[0][1] if picked else self.db.execute(f"SELECT count(*) {matches}", params).fetchone()[0]
        return {"total": total, "page": page, "per_page": per_page, "results": self._results(ids)}

    def versions(self, model: str) -> list[VersionInfo] | None:
        """`RegistryService.versions`' answer (oldest first), or None when the model has no version or is not a
        `NAMESPACE/NAME` (the service then says precisely what is wrong)."""
        namespace, _, name = model.partition("/")
        if not name or "@" in model:
            return None
        return [info for _, info in self._infos(namespace, name, "", {})] or None

    def show(self, ref: str) -> VersionInfo | None:
        """`RegistryService.resolve`'s answer (files, card, parents, attestations, rankings), or None when `ref`
        names no version here (the service then says precisely what is missing)."""
        try:
            parsed = parse_ref(ref)
        except ZooError:
            return None
        key, value = revision_key(parsed.revision or "latest")
        which = {"number": "v.number = :number", "commit": 'v."commit" = :commit',
                 "alias": "v.id = (SELECT a.version_id FROM alias a WHERE a.model_id = m.id AND a.name = :alias)"}
        found = self._infos(parsed.namespace, parsed.name, f"AND {which[key]}", {key: value})
        if not found:
            return None
        version_id, info = found[0]
        info.card = self.db.execute("SELECT card FROM version WHERE id = ?", (version_id,)).fetchone()[0]
        info.files = [{"path": path, "size": size, "sha256": sha} for path, size, sha in self.db.execute(
            "SELECT path, size, sha256 FROM file WHERE version_id = ? ORDER BY path", (version_id,))]
        # parents: the embedded registry's viewer is its administrator, who may read every one of them
        info.parents = [{"ref": f"{ns}/{name}@{number}" if number is not None else external, "relation": relation}
                        for external, relation, ns, name, number in self.db.execute(
                            "SELECT e.parent_external, e.relation, ns.name, m.name, v.number FROM lineageedge e "
                            "LEFT JOIN version v ON v.id = e.parent_id LEFT JOIN model m ON m.id = v.model_id "
                            "LEFT JOIN namespace ns ON ns.id = m.namespace_id WHERE e.child_id = ? ORDER BY e.id",
                            (version_id,))]
        info.attestations = [{"outcome": outcome, "by": by, "at": _iso(at), "environment": json.loads(environment),
                              "details": json.loads(details)} for outcome, by, at, environment, details in
                             self.db.execute("SELECT outcome, actor, at, environment, details FROM attestation "
                                             "WHERE version_id = ? ORDER BY id", (version_id,))]
        info.rankings = [{"dataset": dataset, "fingerprint": fingerprint, "by": by, "score": score,
                          "scores": json.loads(scores), "rank": rank, "of": of, "examples": examples,
                          "recorded_by": actor, "at": _iso(at)}
                         for dataset, fingerprint, by, score, scores, rank, of, examples, actor, at in self.db.execute(
                             "SELECT dataset, fingerprint, by, score, scores, rank, of, examples, actor, at "
                             "FROM rankscore WHERE version_id = ? ORDER BY id DESC LIMIT ?",
                             (version_id, RANKINGS_SHOWN))]
        return info

    def _infos(self, namespace: str, name: str, where: str,
               params: dict[str, Any]) -> list[tuple[int, VersionInfo]]:
        """The model's versions (oldest first) that `where` (SQL over `v`, `m`; its values in `params`) keeps: each
        one's id and the service's VersionInfo without the detail (aliases, metrics and size)."""
        rows = self.db.execute(
            "SELECT v.id, v.number, v.status, v.\"commit\", v.created_at, v.created_by, v.backbone, v.family, "
            "v.strategy, v.status_reason, v.card_complete, v.card_missing, v.message FROM version v "
            "JOIN model m ON m.id = v.model_id JOIN namespace ns ON ns.id = m.namespace_id "
            f"WHERE ns.name = :ns AND m.name = :name {where} ORDER BY v.number",
            {"ns": namespace, "name": name, **params}).fetchall()
        if not rows:
            return []
        listed = _listed([row[0] for row in rows])
        aliases: dict[int, list[str]] = {}
        for version_id, alias in self.db.execute(f"SELECT version_id, name FROM alias WHERE version_id IN ({listed})"):
            aliases.setdefault(version_id, []).append(alias)
        metrics: dict[int, dict[str, float]] = {}
        for version_id, metric, value in self.db.execute(
                f"SELECT version_id, name, value FROM versionmetric WHERE version_id IN ({listed})"):
            metrics.setdefault(version_id, {})[metric] = value
        sizes = dict(self.db.execute(f"SELECT version_id, SUM(size) FROM file WHERE version_id IN ({listed}) "
                                     "GROUP BY version_id").fetchall())
        infos = []
        for (version_id, number, status, commit, created, by, backbone, family, strategy, reason, complete, missing,
             message) in rows:
            info = VersionInfo(f"{namespace}/{name}", number, status, commit, _iso(created), by, backbone, family,
                               strategy, metrics.get(version_id, {}), sorted(aliases.get(version_id, [])),
                               status_reason=reason, card_complete=bool(complete),
                               card_missing=list(json.loads(missing) or []) if missing else [], message=message)
            info.size = sizes.get(version_id, 0)
            infos.append((version_id, info))
        return infos

    def _results(self, ids: list[int]) -> list[dict[str, Any]]:
        """The service's result for each latest version id of `ids`, in that order."""
        if not ids:
            return []
        listed = _listed(ids)
        top = {row[0]: row for row in self.db.execute(
            "SELECT v.id, v.model_id, ns.name, m.name, m.task, m.modality, m.description, m.license, m.tags, "
            "m.visibility, m.updated_at, m.created_at, v.number, v.backbone, v.family, v.strategy, v.library, "
            "v.card_complete, v.card_missing FROM version v JOIN model m ON m.id = v.model_id "
            f"JOIN namespace ns ON ns.id = m.namespace_id WHERE v.id IN ({listed})")}
        models = _listed([row[1] for row in top.values()])
        versions: dict[int, list[tuple]] = {}
        for row in self.db.execute("SELECT id, model_id, number, status FROM version "
                                   f"WHERE model_id IN ({models}) ORDER BY number"):
            versions.setdefault(row[1], []).append(row)
        aliases: dict[int, list[str]] = {}
        for version_id, name in self.db.execute(f"SELECT version_id, name FROM alias WHERE model_id IN ({models})"):
            aliases.setdefault(version_id, []).append(name)
        every = _listed([v[0] for rows in versions.values() for v in rows])
        metrics: dict[int, dict[str, float]] = {}
        for version_id, name, value in self.db.execute(
                f"SELECT version_id, name, value FROM versionmetric WHERE version_id IN ({every})"):
            metrics.setdefault(version_id, {})[name] = value
        results = []
        for version_id in ids:
            (_, model_id, ns, name, task, modality, description, license, tags, visibility, updated, created,
             number, backbone, family, strategy, library, complete, missing) = top[version_id]
            results.append({
                "id": f"{ns}/{name}", "task": task, "modality": modality, "description": description,
                "license": license, "tags": json.loads(tags), "visibility": visibility,
                "updated_at": _iso(updated), "latest": number, "backbone": backbone, "family": family,
                "strategy": strategy, "metrics": metrics.get(version_id, {}), "created_at": _iso(created),
                "library": library, "card_complete": bool(complete),
                "card_missing": list(json.loads(missing) or []) if missing else [],
                "versions": [{"number": v[2], "status": v[3], "aliases": sorted(aliases.get(v[0], [])),
                              "metrics": metrics.get(v[0], {})} for v in versions.get(model_id, [])],
            })
        return results


def _listed(ids: list[int]) -> str:
    """Integer ids as an SQL list (ints only: nothing from a user reaches the text)."""
    return ", ".join(str(int(i)) for i in ids)


def _iso(value: str) -> str:
    """A timestamp as SQLAlchemy stores it in SQLite, as the service writes it: SQLModel's UTCDateTime reads a
    value without an offset as UTC."""
    moment = datetime.fromisoformat(value)
    return (moment.replace(tzinfo=UTC) if moment.utcoffset() is None else moment.astimezone(UTC)).isoformat()
