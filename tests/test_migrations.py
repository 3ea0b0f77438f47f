"""Opening a new registry from several processes at once: one migrates, the others wait and find it at head."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import create_engine, text

OPEN = """
import sys
from zoo_core.registry.service import RegistryService
RegistryService(sys.argv[1], sys.argv[2]).engine.dispose()
"""


def test_processes_opening_a_new_registry_at_once_all_succeed(database_url, tmp_path):
    """Without the migration lock, 5 of 6 processes failed with 'table ... already exists' (SQLite)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    processes = [subprocess.Popen([sys.executable, "-c", OPEN, database_url, str(tmp_path / "blobs")], env=env,
                                  stderr=subprocess.PIPE, text=True) for _ in range(6)]
    errors = [p.communicate(timeout=300)[1] for p in processes]
    assert [p.returncode for p in processes] == [0] * 6, "\n".join(e for e in errors if e)[-2000:]
    engine = create_engine(database_url)
    with engine.connect() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        namespaces = conn.execute(text("SELECT count(*) FROM namespace")).scalar()
    engine.dispose()
    assert len(versions) == 1 and namespaces == 0
