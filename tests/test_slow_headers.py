"""Slow headers ("slowloris"): a real `zoo serve` gives a client ZOO_HEADER_TIMEOUT seconds to send a request's
headers, on a new connection and on a kept-alive one, then answers 408 and closes; other clients are served
meanwhile. bench/slowloris.py measures it with hundreds of connections."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

PARTIAL = b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


@pytest.fixture(scope="module")
def server(serve, tmp_path_factory):
    return serve(tmp_path_factory.mktemp("slow"), env={"ZOO_HEADER_TIMEOUT": "1"})


def dribble(sock: socket.socket, seconds: float) -> tuple[bytes, float]:
    """Send a header's value a byte every 0.1 s, for up to `seconds`: what the server answered, and when."""
    sock.settimeout(0.1)
    begin = time.monotonic()
    while time.monotonic() - begin < seconds:
        try:
            sock.sendall(b"a")
        except OSError:  # closed by the server
            break
        try:
            answer = sock.recv(4096)
            return answer, time.monotonic() - begin
        except TimeoutError:
            continue
    return b"", time.monotonic() - begin


def read_response(sock: socket.socket) -> bytes:
    """One whole response (headers, and a body of its Content-Length)."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(65536)
    return data


def test_headers_sent_a_byte_at_a_time_are_cut_off_while_others_are_served(server):
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as slow:
        slow.sendall(PARTIAL)
        assert httpx.get(f"{server}/api/models", timeout=5).status_code == 200  # served meanwhile
        answer, after = dribble(slow, 6)
    assert answer.startswith(b"HTTP/1.1 408") and b"headers took too long" in answer
    assert 0.8 < after < 3, after


def test_a_kept_alive_connection_gets_the_same_deadline_for_its_next_request(server):
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as conn:
        conn.sendall(b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_response(conn).startswith(b"HTTP/1.1 200")
        conn.sendall(PARTIAL)  # the next request's first bytes stop uvicorn's keep-alive timer
        answer, after = dribble(conn, 6)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert after < 3, after
