"""A publish's rows, written with Core statements (no ORM unit of work): the version, its files, metrics and lineage
edges, the aliases it moves with their history, and the model's columns. Profiled at 16 concurrent writers, the ORM's
objects, flushes and flush events were most of a publish's CPU; each row here is one plain INSERT or UPDATE.

What the ORM's flush events did for a publish is done here explicitly, in the same transaction: the model's search
rows are indexed again when its row or `latest` changed (search_index.reindex), and the change counter moves
(changes.bump: last, so that on PostgreSQL its row is locked only until the commit right after).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from zoo_core.registry.changes import bump
from zoo_core.registry.models import Alias, AliasEvent, FileEntry, LineageEdge, Model, Version, VersionMetric
from zoo_core.registry.search_index import reindex

MODEL_COLUMNS = ("task", "modality", "license", "description", "tags", "visibility", "updated_at")


def alias_states(connection: Connection, model_id: int, names: list[str]) -> dict[str, int | None]:
    """The version number each of `names` points at now (None for an alias not set yet), in one query."""
    rows = connection.execute(select(Alias.name, Version.number).join(Version, Alias.version_id == Version.id)
                              .where(Alias.model_id == model_id, Alias.name.in_(names))).all()
    found = {name: number for name, number in rows}
    return {name: found.get(name) for name in names}


def insert_version(connection: Connection, values: dict[str, Any]) -> int:
    """The version's row (every column given: SQLModel's defaults live in Python, not in the table); its id."""
    return connection.execute(insert(Version.__table__).values(**values)).inserted_primary_key[0]


def insert_children(connection: Connection, version_id: int, files, metrics: dict[str, float],
                    edges: list[dict[str, Any]]) -> None:
    """Files, metrics and lineage edges: one executemany each (none for an empty list, which would insert a row of
    defaults)."""
    if files:
        connection.execute(insert(FileEntry.__table__), [{"version_id": version_id, "path": f.path, "size": f.size,
                                                          "sha256": f.sha256} for f in files])
    if metrics:
        connection.execute(insert(VersionMetric.__table__), [{"version_id": version_id, "name": k, "value": v}
                                                             for k, v in metrics.items()])
    if edges:
        connection.execute(insert(LineageEdge.__table__), [{"child_id": version_id, **edge} for edge in edges])


def move_aliases(connection: Connection, model_id: int, version_id: int, number: int, states: dict[str, int | None],
                 actor: str | None, now) -> None:
    """Point each alias of `states` (name -> the number it points at now, None when unset) at the new version, and
    record each move in the alias history. A concurrent first setting of the same alias fails on its key (the
    caller retries the publish)."""
    for name, previous in states.items():
        if previous is None:
            connection.execute(insert(Alias.__table__).values(model_id=model_id, name=name, version_id=version_id))
        else:
            connection.execute(update(Alias.__table__).where(Alias.model_id == model_id, Alias.name == name)
                               .values(version_id=version_id))
    if states:
        connection.execute(insert(AliasEvent.__table__), [
            {"model_id": model_id, "alias": name, "from_version": previous, "to_version": number, "actor": actor,
             "at": now} for name, previous in states.items()])


def model_as_values(model: Model) -> SimpleNamespace:
    """The model's columns that a publish may change, as a plain object for `publishing.apply_to_model` (changing
    the ORM object would have the session flush it)."""
    return SimpleNamespace(**{column: getattr(model, column) for column in MODEL_COLUMNS})


def update_model(connection: Connection, model: Model, changed: SimpleNamespace) -> bool:
    """Write the columns of `changed` that differ from `model`'s; whether any did."""
    values = {column: getattr(changed, column) for column in MODEL_COLUMNS
              if getattr(changed, column) != getattr(model, column)}
    if values:
        connection.execute(update(Model.__table__).where(Model.id == model.id).values(**values))
    return bool(values)


def finish(connection: Connection, model_id: int, reindexed: bool) -> None:
    """What the ORM's flush events did: the model's search rows indexed again (when `reindexed`), the change counter
    moved (a version was added: search counts versions' columns)."""
    if reindexed:
        reindex(connection, [model_id])
    bump(connection)
