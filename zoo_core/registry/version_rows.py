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

from sqlalchemy import Row, bindparam, func, insert, select, update
from sqlalchemy.engine import Connection

from zoo_core.registry.changes import bump
from zoo_core.registry.models import (
    Alias,
    AliasEvent,
    FileEntry,
    LineageEdge,
    Model,
    Namespace,
    Version,
    VersionMetric,
)
from zoo_core.registry.search_index import index_latest, reindex

MODEL_COLUMNS = ("task", "modality", "license", "description", "tags", "visibility", "updated_at")
_model, _version, _alias = Model.__table__, Version.__table__, Alias.__table__

# Every statement built once: building SQLAlchemy expressions (not running them) was a good part of a publish's CPU.
NAMESPACE_ID = select(Namespace.__table__.c.id).where(Namespace.__table__.c.name == bindparam("ns"))
# the model's row locked (PostgreSQL; SQLite has its write lock): concurrent publishes take their numbers in turn
# rather than racing for the same one and retrying. FOR NO KEY UPDATE, the lock the model's update takes anyway:
# other writes' foreign keys to the model (an alias move's event) still pass
LOCK_MODEL = (select(_model.c.id, *(_model.c[c] for c in MODEL_COLUMNS))
              .where(_model.c.namespace_id == bindparam("ns_id"), _model.c.name == bindparam("name"))
              .with_for_update(key_share=True))
LOCK_MODEL_ID = select(_model.c.id).where(_model.c.id == bindparam("mid")).with_for_update(key_share=True)
NEXT_NUMBER = select(func.coalesce(func.max(_version.c.number), 0) + 1).where(_version.c.model_id == bindparam("mid"))
ALIAS_STATES = (select(_alias.c.name, _version.c.number).join(_version, _alias.c.version_id == _version.c.id)
                .where(_alias.c.model_id == bindparam("mid"), _alias.c.name.in_(bindparam("names", expanding=True))))
_file = FileEntry.__table__
LATEST_CARD = (select(_file.c.sha256).join(_alias, _alias.c.version_id == _file.c.version_id)
               .where(_alias.c.model_id == bindparam("mid"), _alias.c.name == "latest", _file.c.path == "README.md"))
INSERT_MODEL = insert(_model)
INSERT_VERSION = insert(_version)
INSERT_FILES, INSERT_METRICS = insert(FileEntry.__table__), insert(VersionMetric.__table__)
INSERT_EDGES, INSERT_EVENTS = insert(LineageEdge.__table__), insert(AliasEvent.__table__)
INSERT_ALIAS = insert(_alias)
MOVE_ALIAS = (update(_alias).where(_alias.c.model_id == bindparam("mid"), _alias.c.name == bindparam("alias"))
              .values(version_id=bindparam("vid")))
UPDATE_MODEL = update(_model).where(_model.c.id == bindparam("mid")).values(
    {column: bindparam(f"new_{column}") for column in MODEL_COLUMNS})


def namespace_id(connection: Connection, name: str) -> int | None:
    return connection.execute(NAMESPACE_ID, {"ns": name}).scalar()


def lock_model(connection: Connection, ns_id: int, name: str) -> Row | None:
    """The model's id and the columns a publish may change, its row locked until the transaction ends."""
    return connection.execute(LOCK_MODEL, {"ns_id": ns_id, "name": name}).first()


def lock_model_id(connection: Connection, model_id: int) -> None:
    """Lock the model's row as a publish does, so that alias moves outside a publish read the aliases' states (the
    history's `from`) after every other move of the model has committed."""
    connection.execute(LOCK_MODEL_ID, {"mid": model_id})


def insert_model(connection: Connection, ns_id: int, name: str, visibility: str, now) -> SimpleNamespace:
    values = {"namespace_id": ns_id, "name": name, "visibility": visibility, "description": "", "tags": [],
              "created_at": now, "updated_at": now, "task": None, "modality": None, "license": None}
    model_id = connection.execute(INSERT_MODEL, values).inserted_primary_key[0]
    return SimpleNamespace(id=model_id, **{column: values[column] for column in MODEL_COLUMNS})


def next_number(connection: Connection, model_id: int) -> int:
    return connection.execute(NEXT_NUMBER, {"mid": model_id}).scalar()


def alias_states(connection: Connection, model_id: int, names: list[str]) -> dict[str, int | None]:
    """The version number each of `names` points at now (None for an alias not set yet), in one query."""
    found = dict(connection.execute(ALIAS_STATES, {"mid": model_id, "names": names}).all())
    return {name: found.get(name) for name in names}


def insert_version(connection: Connection, values: dict[str, Any]) -> int:
    """The version's row (every column given: SQLModel's defaults live in Python, not in the table); its id."""
    return connection.execute(INSERT_VERSION, values).inserted_primary_key[0]


def insert_children(connection: Connection, version_id: int, files, metrics: dict[str, float],
                    edges: list[dict[str, Any]]) -> None:
    """Files, metrics and lineage edges: one executemany each (none for an empty list, which would insert a row of
    defaults)."""
    if files:
        connection.execute(INSERT_FILES, [{"version_id": version_id, "path": f.path, "size": f.size,
                                           "sha256": f.sha256} for f in files])
    if metrics:
        connection.execute(INSERT_METRICS, [{"version_id": version_id, "name": k, "value": v}
                                            for k, v in metrics.items()])
    if edges:
        connection.execute(INSERT_EDGES, [{"child_id": version_id, **edge} for edge in edges])


def move_aliases(connection: Connection, model_id: int, version_id: int, number: int, states: dict[str, int | None],
                 actor: str | None, now) -> None:
    """Point each alias of `states` (name -> the number it points at now, None when unset) at the new version, and
    record each move in the alias history. A concurrent first setting of the same alias fails on its key (the
    caller retries the publish)."""
    new = [{"model_id": model_id, "name": name, "version_id": version_id}
           for name, previous in states.items() if previous is None]
    moved = [{"mid": model_id, "alias": name, "vid": version_id}
             for name, previous in states.items() if previous is not None]
    if new:
        connection.execute(INSERT_ALIAS, new)
    if moved:
        connection.execute(MOVE_ALIAS, moved)
    if states:
        connection.execute(INSERT_EVENTS, [
            {"model_id": model_id, "alias": name, "from_version": previous, "to_version": number, "actor": actor,
             "at": now} for name, previous in states.items()])


def model_as_values(model) -> SimpleNamespace:
    """The model's columns that a publish may change, as a plain object for `publishing.apply_to_model`."""
    return SimpleNamespace(**{column: getattr(model, column) for column in MODEL_COLUMNS})


def update_model(connection: Connection, model, changed: SimpleNamespace) -> bool:
    """Write `changed` when a column differs from `model`'s; whether one did."""
    if all(getattr(changed, column) == getattr(model, column) for column in MODEL_COLUMNS):
        return False
    connection.execute(UPDATE_MODEL, {"mid": model.id, **{f"new_{c}": getattr(changed, c) for c in MODEL_COLUMNS}})
    return True


def same_text(connection: Connection, model, changed: SimpleNamespace, card_sha256: str | None) -> bool:
    """Whether the model's search text (its name, description, tags and the card of `latest`) stays as it is when
    the version whose card is `card_sha256` becomes `latest`: the card the same bytes as the current latest's, the
    description and tags unchanged. (Call before `latest` moves; False when the model has no `latest` yet.)"""
    if changed.description != model.description or changed.tags != model.tags:
        return False
    current = connection.execute(LATEST_CARD, {"mid": model.id}).first()
    return current is not None and current[0] == card_sha256


def finish(connection: Connection, model_id: int, reindexed: bool, text_unchanged: bool = False) -> None:
    """What the ORM's flush events did: the model's search rows indexed again (when `reindexed`; its text index left
    as it is when `text_unchanged`, see same_text: rewriting a card's full-text entry is a good part of a publish),
    the change counter moved (a version was added: search counts versions' columns)."""
    if reindexed and text_unchanged:
        index_latest(connection, str(int(model_id)))
    elif reindexed:
        reindex(connection, [model_id])
    bump(connection)
