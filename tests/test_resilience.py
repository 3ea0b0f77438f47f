"""A 500 must never take the server down (issue 12).

A real `zoo serve` (uvicorn), its output a pipe that nobody reads while the test runs (as a supervisor or a test
harness might hold it), is made to fail inside requests on the paths that once hung it: a streamed Hub commit, a
zoo publish, a search, and the error handler itself. After every failure it must still answer reads and writes
within a few seconds. Before the fix, uvicorn wrote each 500's traceback to that pipe from the event loop's thread:
once the pipe was full, the loop blocked in write(2) and the server never answered again (registry_server/logs.py).

The failures are injected by a wrapper that only this test starts: it patches RegistryService in the server's own
process so that anything named "boom" raises, then runs `zoo serve`. No production code knows about it.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time

import httpx

# Each injected error's message is larger than a pipe's default 64 KiB, so that on the old code the first logged
# traceback already fills the pipe; the fixed server must not care.
WRAPPER = r"""
import sys

import registry_server.app as app_module
from zoo_core.cli import main
from zoo_core.registry.service import RegistryService

FAILURE = "injected failure " + "x" * 70_000


def failing(method):
    original = getattr(RegistryService, method)

    def wrapped(self, *args, **kwargs):
        if args and "boom" in str(args[0]):
            raise RuntimeError(FAILURE)
        return original(self, *args, **kwargs)

    setattr(RegistryService, method, wrapped)


for method in ("commit", "publish", "search"):
    failing(method)

answer = app_module.error_response


def error_response(request, error, extra_headers=None):  # the error handler itself fails
    if "boom" in request.url.path:
        raise RuntimeError(FAILURE)
    return answer(request, error, extra_headers)


app_module.error_response = error_response
sys.argv = ["zoo", "serve", *sys.argv[1:]]
main()
"""

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PROMPT = 5  # seconds: every answer after a failure comes within this


def hub_commit(name: str, content: bytes) -> bytes:
    """A huggingface_hub commit: a header and one file inline (the streamed path of registry_server/commits.py)."""
    lines = [{"key": "header", "value": {"summary": "resilience"}},
             {"key": "file", "value": {"content": base64.b64encode(content).decode(), "path": name,
                                       "encoding": "base64"}}]
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def test_server_answers_after_500s(tmp_path, database_url):
    from zoo_core.registry.service import RegistryService

    service = RegistryService(database_url, tmp_path / "blobs")
    token = service.create_token("alice")
    service.engine.dispose()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-c", WRAPPER, "--registry", str(tmp_path), "--port", str(port)],
                              env={**os.environ, "ZOO_DATABASE_URL": database_url},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # read only at the end
    auth = {"authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=url, timeout=PROMPT) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get("/api/models").status_code == 200:
                        break
                except httpx.HTTPError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise
                    time.sleep(0.2)

            failures = {
                "streamed Hub commit": lambda: client.post("/api/models/alice/boom/commit/main",
                                                           content=hub_commit("a.txt", b"bytes"),
                                                           headers={**auth, "content-type": "application/x-ndjson"}),
                "zoo publish": lambda: client.post("/api/models/alice/boom/versions", headers=auth, json={
                    "files": [{"path": "a.txt", "sha256": "0" * 64, "size": 5}]}),
                "search": lambda: client.get("/api/models", params={"search": "boom"}),
                "the error handler": lambda: client.get("/api/models/alice/boom"),
            }
            for where, fail in failures.items():
                answer = fail()
                assert answer.status_code == 500, (where, answer.status_code, answer.text[:200])
                # in the zoo's error shape, and saying that uvicorn closes this connection after a failure
                assert answer.json()["type"] == "ServerError" and answer.headers["connection"] == "close", where
                # the server still answers: a read, a write (a new model), and a streamed Hub commit to it
                name = f"ok-{where.replace(' ', '-')}"
                assert client.get("/api/models").status_code == 200, where
                created = client.post("/api/repos/create", headers=auth,
                                      json={"organization": "alice", "name": name})
                assert created.status_code == 200, (where, created.text)
                committed = client.post(f"/api/models/alice/{name}/commit/main",
                                        content=hub_commit("w.txt", name.encode()),
                                        headers={**auth, "content-type": "application/x-ndjson"})
                assert committed.status_code == 200, (where, committed.text)
            listed = client.get("/api/models", params={"search": "ok-"}).json()
            assert len(listed) == len(failures)
    finally:
        server.terminate()
        try:
            output, _ = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            output, _ = server.communicate()
    # nothing was lost while the pipe was full: every 500 is in the log, with its traceback
    assert output.count(b"RuntimeError: injected failure") == len(failures), output[-2000:]


def test_log_records_are_queued_not_written_by_the_caller():
    """The handlers `zoo serve` installs return at once even when their stream never drains: once their queue is
    full, records are dropped (and counted), not held."""
    import logging
    import os

    from registry_server.logs import CAPACITY, queued

    read, write = os.pipe()
    handler = queued(os.fdopen(write, "w"))  # left open: the writer thread holds it
    logger = logging.Logger("resilience")
    logger.addHandler(handler)
    started = time.monotonic()
    for _ in range(CAPACITY + 50):  # 64 KB each: the pipe is full after the first
        logger.error("x" * 64_000)
    assert time.monotonic() - started < PROMPT
    assert handler.writer.dropped > 0
    os.close(read)  # the writer's next write fails (a broken pipe), and it goes on
