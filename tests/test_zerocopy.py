"""Downloads through `zoo serve` leave by os.sendfile (registry_server/zerocopy.py): the bytes of whole files and
of ranges on one kept-alive connection are the file's, a client that hangs up mid-file costs the server nothing
it keeps, and a private model's file still needs its token."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

from tests.cards import complete_card

SIZE = 6 * 1024 * 1024 + 12_345  # larger than a socket's buffer: sendfile has to wait for the client


@pytest.fixture(scope="module")
def served(tmp_path_factory, serve):
    import zoo_core

    root = tmp_path_factory.mktemp("zerocopy")
    folder = root / "ckpt"
    folder.mkdir()
    data = os.urandom(SIZE)
    (folder / "model.safetensors").write_bytes(data)
    (folder / "README.md").write_text(complete_card())
    admin = zoo_core.open_registry(str(root / "zoo"))
    admin.push(folder, "acme/big")
    admin.push(folder, "acme/secret", visibility="private")
    token = admin.create_token("acme")
    admin.service.engine.dispose()
    return serve(root / "zoo"), data, token, root / "zoo"


def test_whole_files_and_ranges_on_one_connection(served):
    url, data, *_ = served
    hub = f"{url}/acme/big/resolve/main/model.safetensors"
    with httpx.Client() as client:  # one kept-alive connection: each response must end exactly where it says
        whole = client.get(hub)
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["content-length"] == str(SIZE)
        assert whole.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
        for header, expected in (("bytes=0-0", data[:1]), ("bytes=100-5000000", data[100:5_000_001]),
                                 (f"bytes={SIZE - 10}-", data[-10:]), ("bytes=-4096", data[-4096:]),
                                 (f"bytes=5-{SIZE * 2}", data[5:])):
            part = client.get(hub, headers={"Range": header})
            assert part.status_code == 206 and part.content == expected, header
            assert part.headers["content-length"] == str(len(expected))
        assert client.get(hub, headers={"Range": f"bytes={SIZE}-"}).status_code == 416
        assert client.get(hub, headers={"If-None-Match": whole.headers["etag"]}).status_code == 304
        head = client.head(hub)
        assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(SIZE)
        api = client.get(f"{url}/api/models/acme/big/versions/1/files/model.safetensors")
        assert api.content == data


def test_a_private_file_needs_its_token(served):
    url, data, token, _ = served
    secret = f"{url}/acme/secret/resolve/main/model.safetensors"
    assert httpx.get(secret).status_code in (401, 404)
    assert httpx.get(secret, headers={"Authorization": f"Bearer {token}"}).content == data


def test_a_client_hanging_up_mid_file_leaves_the_server_serving(served):
    url, data, *_ = served
    where = urlsplit(url)
    for _ in range(3):
        with socket.create_connection((where.hostname, where.port)) as raw:
            raw.sendall(b"GET /acme/big/resolve/main/model.safetensors HTTP/1.1\r\nHost: x\r\n\r\n")
            assert raw.recv(65536).startswith(b"HTTP/1.1 200")  # then gone, most of the file unread
    with httpx.Client() as client:
        assert client.get(f"{url}/acme/big/resolve/main/model.safetensors").content == data
        part = client.get(f"{url}/acme/big/resolve/main/model.safetensors", headers={"Range": "bytes=1-2"})
        assert part.content == data[1:3]


@contextlib.contextmanager
def in_process(root):
    """`zoo serve`'s app and protocol in a thread of this process, so a test can change and watch zerocopy.py."""
    import threading

    import uvicorn

    from registry_server.app import create_app
    from registry_server.slowheaders import HeaderTimeoutProtocol
    from tests.conftest import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(str(root)), host="127.0.0.1", port=port, log_level="warning",
                                           http=HeaderTimeoutProtocol))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/acme/big/resolve/main/model.safetensors"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def evict(root, data: bytes) -> None:
    """Take the stored file out of the page cache (its blob was synced, so clean pages go at once); skips the test
    where the file system keeps it in memory (tmpfs)."""
    digest = hashlib.sha256(data).hexdigest()
    fd = os.open(root / "blobs" / "sha256" / digest[:2] / digest[2:], os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        try:
            os.preadv(fd, [bytearray(1)], 0, os.RWF_NOWAIT)
            pytest.skip("this file system keeps the blob in memory")
        except BlockingIOError:  # evicted; the probe started a read ahead, so once it is done, evict again
            time.sleep(0.5)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def test_past_the_sendfile_threads_downloads_are_copied(served, monkeypatch):
    """With every sendfile thread taken (here: none allowed), a download of a file on disk is copied through
    Python with flow control, and its bytes are the same. The server runs in this process, so the limit can be
    set."""
    from registry_server import zerocopy

    monkeypatch.setattr(zerocopy, "SENDFILE_THREADS", 0)
    monkeypatch.setattr(zerocopy, "_LIMITER", [])
    _, data, _, root = served
    evict(root, data)
    with in_process(root) as url, httpx.Client() as client:
        assert client.get(url).content == data
        assert client.get(url, headers={"Range": "bytes=7-3000000"}).content == data[7:3_000_001]
    assert zerocopy._LIMITER[0].total_tokens == 0  # the copy path it was


def test_a_file_on_disk_goes_to_a_thread_and_one_in_memory_leaves_from_the_loop(served, monkeypatch):
    """The event loop never waits for the disk: a range whose next byte is not in the page cache is sent by a
    sendfile thread; once it is cached, ranges and whole files leave from the loop, as nginx sends them."""
    from registry_server import zerocopy

    _, data, _, root = served
    threaded = []
    monkeypatch.setattr(zerocopy, "_sendfile", lambda *args, real=zerocopy._sendfile: threaded.append(args) or
                        real(*args))
    evict(root, data)
    with in_process(root) as url, httpx.Client() as client:
        assert client.get(url, headers={"Range": "bytes=0-9"}).content == data[:10]
        assert len(threaded) == 1  # from disk: a thread
        assert client.get(url).content == data  # reads the rest into memory (a thread)
        threaded.clear()
        assert client.get(url, headers={"Range": "bytes=0-99"}).content == data[:100]
        assert client.get(url).content == data  # larger than the socket's buffer: the loop waits for room
        assert client.get(url, headers={"Range": "bytes=5-4000000"}).content == data[5:4_000_001]
        assert threaded == []  # from memory: the loop
