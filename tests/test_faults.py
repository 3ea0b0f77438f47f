"""The fault suite, short: real processes push concurrently into one registry (over HTTP to a real `zoo serve`, or
embedded into its folder) while the server or a pusher is killed with SIGKILL, or while gc runs in a loop; then every
acknowledged push must be there, every listed version whole (each file pulled and its sha256 checked), and gc must
clean what killed pushes left. bench/faults.py runs the same trials many times and prints the table; the trials
themselves live in bench/_faults.py. SQLite always, PostgreSQL when ZOO_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("_faults", ROOT / "bench" / "_faults.py")
faults = importlib.util.module_from_spec(spec)
spec.loader.exec_module(faults)

SMALL = {"pushers": 2, "count": 3, "size": 1 << 20}


def intact(row: dict) -> None:
    assert row["acknowledged"] > 0, row
    assert row["lost"] == 0 and row["partial"] == 0, row  # every acknowledged push readable, every version whole
    assert row["versions"] >= row["acknowledged"] and row["files_verified"] == 4 * row["versions"], row


def test_kill9_of_the_server_during_http_pushes_loses_nothing(tmp_path, database_url):
    """The server is killed mid-upload and restarted; the pushers retry through the outage. What killed pushes
    left is kept while their upload leases last (a day: a Git LFS upload may precede its commit), then collected."""
    row = faults.kill_server_trial(tmp_path, database_url, **SMALL)
    intact(row)
    assert row["orphans_after_lease"] == 0, row


def test_kill9_of_an_embedded_push_loses_nothing_and_gc_cleans_its_leftovers(tmp_path, database_url):
    row = faults.kill_pusher_trial(tmp_path, database_url, **SMALL)
    intact(row)
    assert row["failed_pushes"] == 0, row  # the pushers that were not killed never noticed
    assert row["orphans_after_lease"] == 0, row


@pytest.mark.parametrize("http", [True, False], ids=["http", "embedded"])
def test_gc_with_no_grace_in_a_loop_during_pushes_fails_none_and_keeps_every_blob(tmp_path, database_url, http):
    """gc --grace 0 back to back while two processes push: before upload leases covered embedded pushes and were
    recorded before a blob became visible, every embedded version lost blobs and HTTP pushes failed with 500s."""
    row = faults.gc_loop_trial(tmp_path, database_url, http=http, grace=0, **SMALL)
    intact(row)
    assert row["failed_pushes"] == 0 and row["gc_failures"] == 0, row
    assert row["gc_removed"] >= 4 and row["orphan_bytes"] == 0, row  # the aged orphans were collected meanwhile


def test_many_clients_creating_the_same_alias_at_once_all_succeed(tmp_path, database_url):
    """Found by bench/load.py: two requests creating a model's new alias at once raced on its key, and the loser
    answered 500."""
    import threading

    from zoo_core.embedded import EmbeddedRegistry

    registry = EmbeddedRegistry(tmp_path / "zoo", database_url)
    registry.service.card_policy = "off"  # the trials' cards are short; aliases other than latest are the point here
    folder = tmp_path / "ckpt"
    faults.write_checkpoint(folder, faults.random.Random(0), 1024, "x")
    for _ in range(3):
        registry.push(folder, "acme/m")
    errors = []
    for alias in ("staging", "canary", "blue"):
        start = threading.Barrier(6)

        def move(number: int, alias: str = alias, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                registry.set_alias("acme/m", alias, number)
            except Exception as exc:  # noqa: BLE001 (every failure is the finding)
                errors.append(exc)

        threads = [threading.Thread(target=move, args=(1 + k % 3,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    registry.service.engine.dispose()
    assert errors == []


def test_gc_leaves_an_upload_in_flight_alone_however_long_it_stalled(tmp_path):
    """A writer locks its temporary file: gc's clear_tmp takes what killed uploads left (no lock) and never one in
    flight, even with no grace period and the file's last write two hours ago."""
    import os
    import time

    from zoo_core.registry.service import RegistryService

    service = RegistryService(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "blobs")
    left = tmp_path / "blobs" / "tmp" / "left-by-a-killed-push"
    left.write_bytes(b"half a file")
    with service.blobs.writer("w.bin") as writer:
        writer.write(b"first half ")
        for path in (left, Path(writer.tmp)):
            os.utime(path, (time.time() - 7200,) * 2)
        service.gc(grace=0)
        assert not left.exists() and Path(writer.tmp).exists()
        writer.write(b"second half")
        digest, _ = writer.commit()
    assert service.blobs.exists(digest)
    service.engine.dispose()
