"""Database engine and schema: SQLite by default, PostgreSQL through a `postgresql+psycopg://` URL.

The schema is owned by Alembic (zoo_core/registry/migrations); opening a registry upgrades it to head, so a
registry created by an older release is migrated, never recreated.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event, make_url, text
from sqlalchemy.engine import Engine
from sqlmodel import create_engine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def create_db_engine(url: str, migrate: bool = True) -> Engine:
    if url.startswith("sqlite"):
        _private_file(make_url(url).database)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection, _record):
            cursor = connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()
    else:
        engine = create_engine(url, pool_pre_ping=True)
    if migrate:
        upgrade(engine)
    return engine


def upgrade(engine: Engine) -> None:
    """Migrate to head, one process at a time: several processes opening a new registry at once (a `zoo serve`
    with workers, two CLI commands) would otherwise all find it empty and all create its tables (measured: 5 of 6
    failed with 'table ... already exists'). The others wait, then find it at head."""
    config = alembic_config(engine)
    with _migration_lock(engine), engine.begin() as connection:
        if connection.dialect.name == "postgresql":  # released when this transaction ends
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


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
