"""The HTTP client and a server that hangs up on a kept-alive connection just as a request arrives (its keep-alive
timeout firing): idempotent requests are retried once on a new connection, a POST is never sent twice."""

from __future__ import annotations

import socket
import threading

import pytest

from zoo_core.errors import ZooError
from zoo_core.remote import HttpRegistry


class HangingUpServer:
    """Answers `{}` to the first request of each connection; the second request on a connection is read and the
    connection closed without an answer. Counts the requests it received by method."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.received: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        buffer, served = b"", 0
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                buffer = buffer[length:]
                self.received.append(head.split(b" ")[0].decode())
                if served == 1:
                    return  # hang up without answering
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                served += 1


@pytest.fixture
def hanging_up():
    server = HangingUpServer()
    yield server
    server.sock.close()


def test_an_idempotent_request_on_a_connection_the_server_closed_is_retried(hanging_up, tmp_path):
    registry = HttpRegistry(hanging_up.url)
    assert registry._call("GET", "/api/models") == {}
    assert registry._call("GET", "/api/models") == {}  # was: "cannot reach the registry ... Server disconnected"
    body = tmp_path / "blob"
    body.write_bytes(b"x" * 1000)
    with body.open("rb") as handle:  # a streamed body is rewound and sent again
        assert registry._call("PUT", "/api/blobs/" + "0" * 64, content=handle) == {}
        handle.seek(0)
        assert registry._call("PUT", "/api/blobs/" + "0" * 64, content=handle) == {}
    # each call met a hang-up once (the server answers only a connection's first request) and was sent again
    assert hanging_up.received == ["GET", "GET", "GET", "PUT", "PUT", "PUT", "PUT"]


def test_a_post_is_never_sent_twice(hanging_up):
    registry = HttpRegistry(hanging_up.url)
    assert registry._call("POST", "/api/x", json={}) == {}
    with pytest.raises(ZooError, match="closed the connection without answering.*may or may not have taken effect"):
        registry._call("POST", "/api/x", json={})
    assert hanging_up.received == ["POST", "POST"]
