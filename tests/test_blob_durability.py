"""A stored blob is on the disk before a version can name it: its bytes are synced before the rename that makes it
the blob, and the rename (its folder) after. Power loss cannot be simulated here; the order of the system calls is
what guarantees it, so the test records them on a real store."""

import hashlib
import os
from pathlib import Path

from zoo_core.registry.blobs import LocalBlobStore


def test_bytes_then_rename_are_synced_before_the_blob_is_stored(tmp_path, monkeypatch):
    store = LocalBlobStore(tmp_path / "blobs")
    calls = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        calls.append(("replace", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    data = b"weights" * 1000
    digest, size = store.put([data])
    target = str(store.path(digest))
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert calls[0][0] == "fsync" and calls[0][1].startswith(str(tmp_path / "blobs" / "tmp")), calls  # the bytes
    assert calls[1:] == [("replace", target), ("fsync", os.path.dirname(target))], calls  # then the rename
    assert Path(target).read_bytes() == data
