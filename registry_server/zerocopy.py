"""Zero-copy file bodies: the ASGI `http.response.zerocopysend` extension, which the uvicorn we pin (0.54) does not
offer, added to our httptools protocol (slowheaders.py) so that a download's bytes go from the page cache to the
socket with os.sendfile, as nginx sends them, instead of through Python (os.pread into a bytes object, then the
transport's write): an 8 MiB range cost the zoo 5.6 ms of CPU and nginx 0.6 (bench/stream.py).

The message is the ASGI spec's: {"type": "http.response.zerocopysend", "file": <file object>, "offset": int,
"count": int, "more_body": bool}, after `http.response.start`, for a response with a Content-Length. It is offered
only on plain TCP (TLS needs the bytes in user space). Once the transport's buffer holds nothing (the headers went
first), the bytes leave as nginx sends them: from the event loop, os.sendfile of what the socket takes (at most
INLINE bytes a call), then a wait for room, without a thread. That holds while the next byte is in the page cache
(a RWF_NOWAIT read of it fails at once otherwise): a file on disk is sent by a worker thread instead, so the loop
does not wait for the disk (in a partly cached file, at most for one call's INLINE bytes: nginx's bound too). A
thread for every range, as before, cost more than a small range itself (the hand-off there and back). Both send on a
duplicate of the socket's descriptor (the event loop may close its own when the peer goes away; the duplicate
then fails with EPIPE instead of writing to whatever file reuses the number). Sendfile threads have their own
limit (SENDFILE_THREADS), so slow downloads from disk never take the threads the app's endpoints run in; past
it, the rest is copied through Python with flow control.
"""

from __future__ import annotations

import asyncio
import os
import select

import anyio
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

EXTENSION = "http.response.zerocopysend"
STALL = 60.0  # seconds a client may read nothing before the server gives up on the response


class ZeroCopyCycle(RequestResponseCycle):
    """uvicorn's request/response cycle that also takes `http.response.zerocopysend` messages."""

    async def send(self, message) -> None:
        if message["type"] != EXTENSION:
            return await super().send(message)
        if not self.response_started or self.response_complete or self.chunked_encoding is not False:
            raise RuntimeError(f"'{EXTENSION}' needs a started response with a Content-Length, not yet complete")
        count = message.get("count")
        offset = message.get("offset") or 0
        if count is None:
            count = os.fstat(message["file"].fileno()).st_size - offset
        if count > self.expected_content_length:
            raise RuntimeError("Response content longer than Content-Length")
        more_body = message.get("more_body", False)
        if self.scope["method"] == "HEAD" or not count or self.disconnected:
            return await super().send({"type": "http.response.body", "body": b"", "more_body": more_body})
        while self.transport.get_write_buffer_size() and not self.transport.is_closing():
            await asyncio.sleep(0.001)  # the headers (or an earlier body) go out first
        fd = message["file"].fileno()
        sock = os.dup(self.transport.get_extra_info("socket").fileno())
        try:
            sent = await _send_from_loop(sock, fd, offset, count)
            if 0 <= sent < count:  # the rest is on disk: a thread reads it, the loop never waits for the disk
                if _limiter().available_tokens < 1:  # every sendfile thread busy (slow clients): copy, as before
                    self.expected_content_length -= sent
                    return await self._copy(fd, offset + sent, count - sent, more_body)
                try:
                    sent += await anyio.to_thread.run_sync(_sendfile, sock, fd, offset + sent, count - sent,
                                                           limiter=_limiter())
                except OSError:  # the client went away, or stopped reading for STALL seconds
                    sent = -1
        finally:
            os.close(sock)
        if sent != count:  # the body cannot be completed: end the connection, as a short read would
            self.disconnected = True
            self.transport.close()
            return
        self.expected_content_length -= count
        await super().send({"type": "http.response.body", "body": b"", "more_body": more_body})

    async def _copy(self, fd: int, offset: int, count: int, more_body: bool) -> None:
        """The bytes through Python in PIECE-sized reads, each sent once the transport can take it (flow control):
        no thread is held while a slow client reads."""
        end = offset + count
        while offset < end:
            piece = await anyio.to_thread.run_sync(os.pread, fd, min(PIECE, end - offset), offset)
            if not piece:  # the file ended early
                self.disconnected = True
                self.transport.close()
                return
            offset += len(piece)
            await super().send({"type": "http.response.body", "body": piece, "more_body": offset < end or more_body})


PIECE = 8 * 1024 * 1024  # a read when copying
INLINE = 2 * 1024 * 1024  # sent from the event loop in one call at most (nginx's sendfile_max_chunk)
NOWAIT = getattr(os, "RWF_NOWAIT", None)  # Linux: a read that would wait for the disk fails instead
# sendfile threads at once: each is held while its client reads, so they have their own limit, apart from the
# thread pool that runs the app's endpoints; beyond it, downloads are copied through Python as before
SENDFILE_THREADS = 32
_LIMITER: list[anyio.CapacityLimiter] = []


def _limiter() -> anyio.CapacityLimiter:
    if not _LIMITER:
        _LIMITER.append(anyio.CapacityLimiter(SENDFILE_THREADS))
    return _LIMITER[0]


async def _send_from_loop(sock: int, fd: int, offset: int, count: int) -> int:
    """Bytes of the range sent from the event loop, as nginx sends them: while the next ones are in the page cache,
    os.sendfile what the socket takes (at most INLINE a call), then wait for room without a thread. Returns how
    many went (fewer than `count` when the next byte is on disk or the file ended), -1 when the client is gone or
    read nothing for STALL seconds."""
    loop = asyncio.get_running_loop()
    room: asyncio.Future | None = None

    def writable() -> None:  # the socket has room (or an error to report); called while it has, until removed
        if room is not None and not room.done():
            room.set_result(True)

    sent, watching = 0, False
    try:
        while sent < count:
            if not _cached(fd, offset + sent):
                return sent
            try:
                n = os.sendfile(sock, fd, offset + sent, min(count - sent, INLINE))
            except BlockingIOError:
                if not watching:  # one watch a response: a wait costs a future, not two epoll changes
                    loop.add_writer(sock, writable)
                    watching = True
                room = loop.create_future()
                stalled = loop.call_later(STALL, lambda late=room: late.done() or late.set_result(False))
                try:
                    if not await room:
                        return -1
                finally:
                    stalled.cancel()
                continue
            except OSError:
                return -1
            if n == 0:  # the file ended early
                return sent
            sent += n
            if sent < count and n == INLINE:
                await asyncio.sleep(0)  # the socket takes more at once: other requests' turn between pieces
        return sent
    finally:
        if watching:
            loop.remove_writer(sock)


def _cached(fd: int, offset: int) -> bool:
    """Whether the byte at `offset` is in the page cache: a read that would wait for the disk fails at once."""
    if NOWAIT is None:
        return False
    try:
        os.preadv(fd, [bytearray(1)], offset, NOWAIT)
        return True
    except OSError:  # EAGAIN: on disk; or a file system that cannot tell
        return False


def _sendfile(sock: int, fd: int, offset: int, count: int) -> int:
    """os.sendfile until `count` bytes went or the file ended; waits (poll) while the socket's buffer is full."""
    sent = 0
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    while sent < count:
        try:
            n = os.sendfile(sock, fd, offset + sent, count - sent)
        except BlockingIOError:
            if not poller.poll(STALL * 1000):
                raise TimeoutError(f"the client read nothing for {STALL:.0f} s") from None
            continue
        if n == 0:  # the file ended early
            break
        sent += n
    return sent


def offer(protocol, cycle_before) -> None:
    """Called by the protocol once a request's headers are in: the new cycle (if one was made) takes zero-copy
    sends, and its scope says so. The cycle's task has not run yet (it was only scheduled), so it sees both."""
    cycle = protocol.cycle
    if cycle is None or cycle is cycle_before or type(cycle) is not RequestResponseCycle:
        return
    if protocol.transport.get_extra_info("sslcontext") is not None or \
            protocol.transport.get_extra_info("socket") is None:
        return
    cycle.__class__ = ZeroCopyCycle  # same fields, one more message type
    cycle.scope.setdefault("extensions", {})[EXTENSION] = {}
