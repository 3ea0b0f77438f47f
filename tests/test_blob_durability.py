"""A stored blob is on the disk before a version can name it: its bytes are synced before the rename that makes it
the blob, and the rename (its folder) after, before the upload is acknowledged. Power loss cannot be simulated here;
the order of the system calls is what guarantees it, so the tests record them on a real store. Concurrent writers
share the syncs of their renames (group_sync.py): each acknowledged upload's rename must come before the start of a
sync round that finished before the acknowledgement."""

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from zoo_core.registry import group_sync
from zoo_core.registry.blobs import LocalBlobStore
from zoo_core.registry.group_sync import GroupSync


class Recorder:
    """The store's fsyncs, renames and sync rounds (with what each round covers), in the order they happened."""

    def __init__(self, store: LocalBlobStore, monkeypatch):
        self.events: list[tuple] = []
        self.lock = threading.Lock()
        real_fsync, real_replace, real_flush = os.fsync, os.replace, store.renames._flush

        def fsync(fd):
            self.add("fsync", os.readlink(f"/proc/self/fd/{fd}"))
            real_fsync(fd)

        def replace(src, dst):
            real_replace(src, dst)
            self.add("replace", str(dst))  # after: the rename has happened

        def flush(folders):
            self.add("round", sorted(folders))
            real_flush(folders)
            self.add("round done", sorted(folders))

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(store.renames, "_flush", flush)

    def add(self, *event) -> None:
        with self.lock:
            self.events.append(event)


@pytest.mark.parametrize("syncfs", [True, False], ids=["syncfs", "fsync-each-folder"])
def test_bytes_then_rename_are_synced_before_the_blob_is_stored(tmp_path, monkeypatch, syncfs):
    store = LocalBlobStore(tmp_path / "blobs")
    store.renames = GroupSync(str(store.root), syncfs=syncfs)
    calls = Recorder(store, monkeypatch).events
    data = b"weights" * 1000
    digest, size = store.put([data])
    target = str(store.path(digest))
    folder = os.path.dirname(target)
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert calls[0][0] == "fsync" and calls[0][1].startswith(str(tmp_path / "blobs" / "tmp")), calls  # the bytes
    syncs_folder = [("fsync", folder)] if not syncfs else []  # syncfs: one call for the whole file system
    assert calls[1:] == [("replace", target), ("round", [folder]), *syncs_folder, ("round done", [folder])], calls
    assert Path(target).read_bytes() == data


def test_a_round_is_one_syncfs_of_the_store_on_linux(tmp_path):
    store = LocalBlobStore(tmp_path / "blobs")
    if not hasattr(store.renames._flush, "fd"):
        pytest.skip("no syncfs here: rounds fsync each folder (the test above)")
    assert os.path.samefile(os.readlink(f"/proc/self/fd/{store.renames._flush.fd}"), store.root)


def test_concurrent_uploads_are_acknowledged_only_after_a_sync_that_began_after_their_rename(tmp_path, monkeypatch):
    store = LocalBlobStore(tmp_path / "blobs")
    recorder = Recorder(store, monkeypatch)
    slow_flush = store.renames._flush

    def slower(folders):  # a slow disk: writers pile up behind the round in progress and share the next one
        time.sleep(0.2)
        slow_flush(folders)

    monkeypatch.setattr(store.renames, "_flush", slower)
    writers, start, failures = 16, threading.Barrier(16), []

    def upload() -> None:
        try:
            start.wait()
            digest, _ = store.put([os.urandom(4096)])
            recorder.add("acknowledged", str(store.path(digest)))
        except Exception as exc:  # noqa: BLE001  (reported by the assertion below)
            failures.append(exc)

    threads = [threading.Thread(target=upload) for _ in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = recorder.events
    assert not failures and sum(e[0] == "acknowledged" for e in events) == writers, failures
    rounds = [(i, events.index(("round done", *e[1:]), i)) for i, e in enumerate(events) if e[0] == "round"]
    for i, (kind, target) in enumerate(events):
        if kind == "acknowledged":
            renamed = events.index(("replace", target))
            folder = os.path.dirname(target)
            assert any(renamed < began and done < i and folder in events[began][1] for began, done in rounds), \
                f"{target} was acknowledged before a sync that began after its rename: {events}"
    assert len(rounds) <= writers // 2, f"{len(rounds)} sync rounds for {writers} concurrent uploads: not shared"
    assert store.renames.stats() == {"requests": writers, "rounds": len(rounds)}


def test_a_failed_sync_fails_every_upload_of_its_round(tmp_path, monkeypatch):
    store = LocalBlobStore(tmp_path / "blobs")

    def broken(_folders):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(store.renames, "_flush", broken)
    with pytest.raises(OSError, match="Input/output"):
        store.put([b"weights"])
    monkeypatch.setattr(store.renames, "_flush", group_sync._fsync_each)  # the disk is back
    digest, _ = store.put([b"weights"])  # stored already, but only now known durable: synced again, then answered
    assert store.renames.stats()["rounds"] == 2 and Path(store.path(digest)).read_bytes() == b"weights"


def test_the_server_tells_how_many_rounds_its_uploads_shared_in_the_line_the_benchmark_reads(tmp_path, capsys,
                                                                                             monkeypatch):
    import importlib.util

    from fastapi.testclient import TestClient

    from registry_server.app import create_app

    app = create_app(tmp_path / "registry")
    auth = {"Authorization": f"Bearer {app.state.service.create_token('acme')}"}
    with TestClient(app) as client:
        for data in (b"weights", b"config", b"weights"):  # the third: stored already, still synced (a round each)
            answer = client.put(f"/api/blobs/{hashlib.sha256(data).hexdigest()}?path=f", content=data, headers=auth)
            assert answer.status_code == 200, answer.text
    log = tmp_path / "zoo.log"
    log.write_text(capsys.readouterr().err)
    bench = Path(__file__).parents[1] / "bench"
    monkeypatch.syspath_prepend(str(bench))  # (for its `_common`)
    spec = importlib.util.spec_from_file_location("bench_registry", bench / "registry.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.sync_rounds(log) == {"uploads": 3, "rounds": 3}


def test_a_blob_replaced_by_an_upload_of_the_same_bytes_is_still_touched(tmp_path):
    """Two uploads of the same bytes at once both rename onto the blob's name; a publish touching the blob meanwhile
    may lock the file the other upload just replaced. It is still stored (same bytes): `touch` must say so, not
    'removed meanwhile' (which made concurrent pushes of identical files fail now and then)."""
    store = LocalBlobStore(tmp_path / "blobs")
    data = b"recipe" * 100
    digest, _ = store.put([data])
    target = store.path(digest)
    stop, answers = threading.Event(), []

    def replace_again_and_again():
        n = 0
        while not stop.is_set():
            copy = tmp_path / f"copy{n % 2}"
            copy.write_bytes(data)
            os.replace(copy, target)
            n += 1

    replacer = threading.Thread(target=replace_again_and_again)
    replacer.start()
    try:
        answers = [store.touch(digest) for _ in range(3000)]
    finally:
        stop.set()
        replacer.join()
    assert all(answers), f"{answers.count(False)} of {len(answers)} touches said the blob was gone"
