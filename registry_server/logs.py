"""The server's logs never block it.

uvicorn logs a request's unhandled exception (a 500) with its traceback, several KB, from the event loop's thread,
and a logging.StreamHandler writes it to stderr at once. When stderr is a pipe nobody reads (a supervisor or test
that started `zoo serve` with stdout=PIPE, `zoo serve | less` left paused), the 64 KiB pipe fills after about ten
500s, write(2) blocks, and with it the event loop: the server answered no request at all from then on, not even
uvicorn's own 400s (py-spy: MainThread in StreamHandler.emit under RequestResponseCycle.run_asgi, the thread in
the kernel's anon_pipe_write).

So `zoo serve` gives uvicorn's loggers, and the root logger (the registry's own and Python's warnings), handlers
that only put the formatted record on a bounded queue; one writer thread per process writes them to the stream. If
the stream stalls, only that thread waits; once the queue is full, records are dropped (and counted) rather than
held, and the writer says how many it dropped when the stream drains again.
"""

from __future__ import annotations

import copy
import logging
import logging.handlers
import os
import queue
import threading
from typing import Any, TextIO

CAPACITY = 200  # records waiting for a stalled stream; a 500's record holds its traceback (a few KB)


class QueuedHandler(logging.handlers.QueueHandler):
    """Formats a record in the caller's thread, hands it to the writer thread, and never waits."""

    def __init__(self, records: queue.Queue, writer: _Writer):
        super().__init__(records)
        self.writer = writer

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:  # the stream has stalled: losing a log line is better than stopping the server
            self.writer.dropped += 1


class _Writer(threading.Thread):
    def __init__(self, records: queue.Queue, stream: TextIO):
        super().__init__(name="zoo-log-writer", daemon=True)  # daemon: a stalled stream must not hold up exit
        self.records, self.stream, self.dropped = records, stream, 0
        try:  # written with os.write, holding no lock of the stream's: exit flushes sys.stderr even while we wait
            self.fd: int | None = stream.fileno()
        except (AttributeError, OSError, ValueError):  # a stream without a file (pytest's capture)
            self.fd = None

    def run(self) -> None:
        while True:
            record = self.records.get()
            try:
                if self.dropped:
                    dropped, self.dropped = self.dropped, 0
                    self.write(f"(zoo serve: {dropped} log records dropped while this stream was not read)\n")
                self.write(record.getMessage() + "\n")  # QueueHandler.prepare made it the formatted text
            except (OSError, ValueError):  # the reader has gone (a broken pipe, a closed stream): nothing to tell
                pass

    def write(self, text: str) -> None:
        if self.fd is None:
            self.stream.write(text)
            self.stream.flush()
            return
        data = text.encode(getattr(self.stream, "encoding", None) or "utf-8", errors="replace")
        while data:
            data = data[os.write(self.fd, data):]


def queued(stream: TextIO) -> logging.Handler:
    """A handler for logging.config.dictConfig (`"()": "registry_server.logs.queued"`) writing to `stream` from its
    own thread. The process that installs it also routes Python's warnings through logging (else they go to
    stderr directly, from whichever thread warns)."""
    records: queue.Queue = queue.Queue(CAPACITY)
    writer = _Writer(records, stream)
    writer.start()
    logging.captureWarnings(True)
    return QueuedHandler(records, writer)


def log_config() -> dict[str, Any]:
    """uvicorn's own logging configuration (its formats and loggers), with queued handlers, and the root logger on
    the same handler: pass as uvicorn.run(..., log_config=log_config())."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    for handler in config["handlers"].values():
        handler["()"] = "registry_server.logs.queued"
        del handler["class"]
    config["root"] = {"handlers": ["default"], "level": "WARNING"}
    return config
