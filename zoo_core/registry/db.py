"""Database engine and schema: SQLite by default, PostgreSQL through a `postgresql+psycopg://` URL.

The schema is owned by Alembic (zoo_core/registry/migrations); opening a registry upgrades it to head, so a
registry created by an older release is migrated, never recreated.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import event, make_url, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import create_engine

from zoo_core.registry.heads import MIGRATIONS, head_revisions

if TYPE_CHECKING:
    from alembic.config import Config



def alembic_config(engine: Engine | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def create_db_engine(url: str, migrate: bool = True) -> Engine:
    if url.startswith("sqlite"):
        _private_file(make_url(url).database)
        # a pool as large as the requests a server runs at once (its thread pool's 40): a connection beyond the pool
        # is opened (five pragmas) and closed again for each request (py-spy found this under 16 clients)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=20,
                               max_overflow=20)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection, _record):
            cursor = connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            # WAL: readers never wait for a writer, and several server processes share the file (zoo serve
            # --workers). synchronous=NORMAL is WAL's usual pairing (SQLite's documentation: always consistent, and
            # durable across a crash of the process, since a commit is in the WAL file before it returns; only a power
            # loss or an OS crash may roll back the last commits, the WAL being synced at checkpoints, not at each
            # commit). A blob is synced before the commit that names it (blobs.py), so such a crash may forget the
            # newest versions but never leave one whose files are missing or empty
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA temp_store=MEMORY")
            cursor.execute("PRAGMA cache_size=-16000")  # 16 MB of page cache per connection
            cursor.close()
    else:
        engine = create_engine(url, pool_pre_ping=True)
    if migrate:
        upgrade(engine)
    return engine


def write_lock(engine: Engine) -> contextlib.AbstractContextManager:
    """What a write transaction holds from its first statement to its commit: on SQLite, one lock per engine, so that
    this process's writers queue on it and each starts the moment the previous one commits. Without it they meet on
    SQLite's file lock, whose busy handler polls with sleeps growing to 100 ms: at 16 concurrent writes most of a
    write's time was spent asleep. Other processes on the same file still wait through the busy handler; PostgreSQL
    needs no lock (row locks, no file lock). Re-entrant: a write may call another on the same thread."""
    if engine.dialect.name != "sqlite":
        return contextlib.nullcontext()
    return _SQLITE_WRITE_LOCKS.setdefault(engine.url.render_as_string(), threading.RLock())


_SQLITE_WRITE_LOCKS: dict[str, threading.RLock] = {}


def upgrade(engine: Engine) -> None:
    """Migrate to head, one process at a time: several processes opening a new registry at once (a `zoo serve`
    with workers, two CLI commands) would otherwise all find it empty and all create its tables (measured: 5 of 6
    failed with 'table ... already exists'). The others wait, then find it at head. A database already at head is
    recognised without Alembic (importing it and reading every migration script costs a CLI command a good part
    of its start)."""
    if at_head(engine):
        return
    from alembic import command

    config = alembic_config(engine)
    with _migration_lock(engine), engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:  # Alembic's batch mode rebuilds a table (copy, drop, rename): foreign keys off meanwhile, as
            # Alembic advises (with them on, dropping `version` fails once other tables reference its rows)
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                if connection.dialect.name == "postgresql":  # released when this transaction ends
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                    raise RuntimeError("the registry's migration left rows whose foreign keys point nowhere")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


MIGRATION_LOCK_KEY = 0x7A6F6F  # PostgreSQL advisory lock id for migrations ("zoo")


def _migration_lock(engine: Engine):
    """A lock file beside a SQLite database (PostgreSQL uses an advisory lock inside the transaction instead)."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return contextlib.nullcontext()
    from filelock import FileLock

    return FileLock(f"{database}.migrate.lock", timeout=600, mode=0o600)


def _private_file(database: str | None) -> None:
    """Create a new SQLite file readable by its owner only: it holds private models' cards and token hashes.
    (SQLite gives its -wal and -shm files the database file's permissions.)"""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def at_head(engine: Engine) -> bool:
    heads = head_revisions()
    try:
        with engine.connect() as connection:
            current = {row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))}
    except DBAPIError:  # no alembic_version table yet: a new database
        return False
    return bool(heads) and current == heads
