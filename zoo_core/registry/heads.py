"""The heads of the registry's migration scripts, read from their text (no Alembic, no SQLAlchemy): whether a
database is at head is asked by every command that opens a registry, the quick read-only ones included."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

MIGRATIONS = Path(__file__).with_name("migrations")


@cache
def head_revisions() -> frozenset[str]:
    """The heads of the migration scripts, read from their `revision` / `down_revision` lines (no import)."""
    revisions, parents = set(), set()
    for script in MIGRATIONS.joinpath("versions").glob("*.py"):
        source = script.read_text()
        revision = re.search(r"^revision\s*=\s*(.+)$", source, re.M)
        down = re.search(r"^down_revision\s*=\s*(.+)$", source, re.M)
        if revision:
            revisions.add(ast.literal_eval(revision.group(1).strip()))
        if down:
            value = ast.literal_eval(down.group(1).strip())
            parents.update(value if isinstance(value, tuple | list) else [value] if value else [])
    return frozenset(revisions - parents)
