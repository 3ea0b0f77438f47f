"""Group commit for the blob store's renames: one sync makes every rename done before it began durable.

A blob is durable once its folder is synced after the rename that made it (blobs.py). Each writer syncing its own
folder cost a journal commit and a disk cache flush per upload. Here a writer records its folder and waits until a
round that *began after it recorded it* has finished; the first waiter to find no round running syncs on behalf of
everyone recorded so far (leader and followers, as databases commit their logs). A writer waits for at most the round
in progress and the next one.

One round is enough for every writer in it: a writer's rename returned before it recorded its folder, and the round
syncs after that, so the rename is in what the sync makes durable.

What a round syncs: blobs are spread over 256 folders (sha256/ab), so 16 concurrent uploads rarely share one, and a
leader fsyncing each recorded folder in turn pays one device flush per folder, serially (16 threads storing 64 KiB
blobs on this project's ext4 disk, under load 8: 480-510 a second, against 930-4,600 with each writer fsyncing its
own folder at once, which the kernel's journal batches, and 2,600-4,100 with rounds of one syncfs). So on Linux a
round is one `syncfs` of the store's file system: it writes back and waits for every dirty file and directory there,
commits the journal and flushes the device cache once for all of them, a superset of fsyncing each folder. Its error
is read from a descriptor the store keeps open: since Linux 5.8 `syncfs` reports write-back errors the file system
met since that descriptor last saw one (a descriptor opened for each round would miss those from before its
opening). Its extra cost is the file system's other dirty data (another program's unsynced writes on the same disk),
written back with ours. Elsewhere (no `syncfs`), a round fsyncs each recorded folder, as POSIX defines.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
from collections.abc import Callable, Iterable


class _Round:
    __slots__ = ("done", "error", "folders")

    def __init__(self) -> None:
        self.folders: set[str] = set()
        self.done = False
        self.error: OSError | None = None


class GroupSync:
    """`sync(folder)` returns once the rename just done in `folder` is durable; concurrent calls share the work.
    `root`: the store's folder; where `syncfs` exists (and `syncfs` is true) a round syncs its file system in one
    call, else it fsyncs each folder recorded for it."""

    def __init__(self, root: str, syncfs: bool = True) -> None:
        self._lock = threading.Condition()
        self._next = _Round()  # the round that arriving writers join; nobody has started it yet
        self._running = False
        self._flush: Callable[[Iterable[str]], None] = (syncfs and _syncfs(root)) or _fsync_each
        self.requests = self.rounds = 0  # rounds per request: what the sharing saves (bench/registry.py prints it)

    def sync(self, folder: str) -> None:
        with self._lock:
            mine = self._next
            mine.folders.add(folder)
            self.requests += 1
            while not mine.done:
                if self._running:
                    self._lock.wait()
                    continue
                # nobody is syncing and `mine` has not started (only a leader starts a round, and it finishes it
                # before anyone else can lead): this writer leads it
                self._running, self._next = True, _Round()
                mine.error = OSError(f"the sync of {len(mine.folders)} blob folders was interrupted")
                self._lock.release()
                try:
                    self._flush(mine.folders)
                    mine.error = None
                except OSError as exc:
                    mine.error = exc
                finally:
                    self._lock.acquire()
                    self.rounds += 1
                    mine.done, self._running = True, False
                    self._lock.notify_all()
            if mine.error is not None:  # every writer of a failed round fails: none of their renames is known durable
                raise mine.error

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"requests": self.requests, "rounds": self.rounds}


def fsync_path(path: str) -> None:
    """fsync a file's data, or a folder's entries (a rename in it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_each(folders: Iterable[str]) -> None:
    for folder in folders:
        fsync_path(folder)


def _syncfs(root: str) -> _SyncFs | None:
    """A round as one syncfs(2) of `root`'s file system (Linux), or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        call = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    call.argtypes, call.restype = [ctypes.c_int], ctypes.c_int
    return _SyncFs(call, root)


class _SyncFs:
    def __init__(self, call, root: str) -> None:
        self.call = call
        self.fd = os.open(root, os.O_RDONLY)  # kept while the store lives: see the module's docstring on errors

    def __call__(self, _folders: Iterable[str]) -> None:
        if self.call(self.fd) != 0:  # (ctypes releases the GIL for the call)
            errno = ctypes.get_errno()
            raise OSError(errno, f"syncing the blob store's file system: {os.strerror(errno)}")

    def __del__(self) -> None:
        os.close(self.fd)
