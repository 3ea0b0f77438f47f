"""A change counter in the database, and the search counts kept per value of it.

Counting every model (the catalog's home page: a total and each facet value's count over 100,000 models) costs
hundreds of milliseconds, and its answer only changes when the registry does. So every committed transaction that
wrote a row search reads adds one to `registry_change.counter`, in that same transaction; a process keeps counts
under (counter, viewer, filters) and asks the database for the counter (one primary-key read) before using them.
That holds across processes and hosts: a write anywhere moves the counter every process reads.

Why the increment happens at commit (`before_commit`, after a last flush) and not at the first write: on
PostgreSQL the updated row stays locked until the transaction ends, so concurrent publishes serialise only on
their commits, not on everything they do before. Writes that bypass the ORM session (bulk loads) leave the
counter alone: a process started after them counts afresh; one already running must be told with `bump`.
"""

from __future__ import annotations

from itertools import chain

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Field, SQLModel

from zoo_core.registry.models import Alias, Attestation, LineageEdge, Model, Namespace, Version, VersionMetric


class RegistryChange(SQLModel, table=True):
    """One row (id 1): how many transactions have changed what search reads."""

    __tablename__ = "registry_change"

    id: int = Field(primary_key=True)
    counter: int = 0


# what search filters or counts by (tokens, uploads, alias history and rankings do not move the counter)
WATCHED = (Model, Version, Alias, VersionMetric, LineageEdge, Attestation, Namespace)
_CHANGED = "zoo_registry_changed"


def bump(connection: Connection) -> None:
    connection.execute(text("UPDATE registry_change SET counter = counter + 1 WHERE id = 1"))


def current(connection: Connection) -> int | None:
    """The counter, or None when the table has no row (then nothing is kept)."""
    return connection.execute(text("SELECT counter FROM registry_change WHERE id = 1")).scalar()


@event.listens_for(OrmSession, "after_flush")
def _note(session: OrmSession, _context) -> None:
    if any(isinstance(obj, WATCHED) for obj in chain(session.new, session.dirty, session.deleted)):
        session.info[_CHANGED] = True


@event.listens_for(OrmSession, "before_commit")
def _count(session: OrmSession) -> None:
    session.flush()  # what the commit would flush anyway, so that every change is noted before the flag is read
    if session.info.pop(_CHANGED, False):
        bump(session.connection())
    # (a rolled-back transaction leaves the flag set: the next commit then moves the counter once too often,
    # which costs one recount and is never wrong)
