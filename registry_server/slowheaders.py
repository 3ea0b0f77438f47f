"""A deadline on reading a request's headers, which uvicorn lacks: its keep-alive timeout stops at a request's first
byte, so a client sending its headers a byte a second ("slowloris") holds a connection, a file descriptor and its
buffers for as long as it likes (bench/slowloris.py: 500 such connections all held to the end of the run).

`HeaderTimeoutProtocol` is uvicorn's httptools protocol with one timer: armed when a connection opens and when a
request's first byte arrives on a kept-alive one, cancelled once the headers are complete; when it fires, the client
gets a 408 and the connection is closed. Bodies have their own deadline (bodies.py). `ZOO_HEADER_TIMEOUT` sets the
seconds (0: off). Behind a reverse proxy, the proxy's own (nginx: client_header_timeout) does the same first.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from registry_server import zerocopy
from zoo_core.settings import get_settings

MESSAGE = b"the request's headers took too long\n"
TIMED_OUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
             b"content-length: %d\r\n\r\n%s" % (len(MESSAGE), MESSAGE))


class HeaderTimeoutProtocol(HttpToolsProtocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = get_settings().header_timeout
        self.header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.header_timer is None:  # the next request on a kept-alive connection
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        before = self.cycle
        super().on_headers_complete()
        zerocopy.offer(self, before)  # downloads then leave through os.sendfile (zerocopy.py)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self.header_timeout > 0:
            self.header_timer = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _expired(self) -> None:
        self.header_timer = None
        if not self.transport.is_closing():
            self.transport.write(TIMED_OUT)
            self.transport.close()
