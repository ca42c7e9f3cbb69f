"""How gunicorn runs the app: uvicorn workers with limits on request heads.

uvicorn's httptools parser puts no bound on the size of a request head and no
time limit on receiving it: one client sending a 100 MB header, or trickling
one byte at a time, can stall a worker. The protocol below refuses a head
over 64 KiB (431), finished or not, or still unfinished after
PALO_HEAD_TIMEOUT_SECONDS (30 by default; 408), and answers malformed HTTP in
the specification's JSON error format, not uvicorn's text.
"""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn_worker import UvicornWorker as BaseUvicornWorker

from palo_api.config import Settings

MAX_HEAD_BYTES = 64 * 1024
LINGER_SECONDS = 2.0
REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
}


@functools.cache
def _head_timeout_seconds() -> int:
    return Settings.from_env().head_timeout_seconds


def raw_error_response(status: int, code: str, message: str) -> bytes:
    """A complete HTTP/1.1 error response in the specification's format."""
    request_id = str(uuid.uuid4())
    body = json.dumps({"error": code, "message": message, "request_id": request_id})
    head = (
        f"HTTP/1.1 {status} {REASONS[status].decode()}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        f"x-request-id: {request_id}\r\n"
        "connection: close\r\n\r\n"
    )
    return (head + body).encode("ascii")


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a refused head."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a size and time limit on each head.

    Two counts enforce the size limit: the bytes received while a head is
    unfinished (the parser buffers a header until its end, so a huge one is
    caught while it arrives), and the parsed request line and header fields
    (exact, for a head that arrives whole in one read).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._parsed_head_bytes = 0
        self._in_head = True
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._head_timeout_seconds = _head_timeout_seconds()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # draining what the client still sends after a refusal
        super().data_received(data)
        # Counted after parsing, so a body arriving with its head is not
        # mistaken for a long head; the parser buffers at most one read more.
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse_large_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._parsed_head_bytes = 0
        self._start_head_timer()

    def on_url(self, url: bytes) -> None:
        self._count_parsed(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_parsed(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def _count_parsed(self, size: int) -> None:
        self._parsed_head_bytes += size
        if self._parsed_head_bytes > MAX_HEAD_BYTES:
            self._refuse_large_head()
            # httptools turns this into HttpParserError, which uvicorn
            # answers through send_400_response: already refused, so ignored.
            raise _HeadTooLarge

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_head_timer()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if not self._refused:
            self._refuse(400, "invalid_request", "The HTTP request is malformed.")

    def _refuse_large_head(self) -> None:
        self._refuse(
            431,
            "request_header_too_large",
            f"The request line and headers exceed {MAX_HEAD_BYTES} bytes.",
        )

    def _refuse(self, status: int, code: str, message: str) -> None:
        self._stop_head_timer()
        self._refused = True
        self.logger.warning("refused request head: %s", code)
        self.transport.write(raw_error_response(status, code, message))
        # Closing with unread input makes the kernel send RST, which can
        # destroy the answer before the client reads it: stop writing, keep
        # draining the client's input for a moment, then close.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _start_head_timer(self) -> None:
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(
            self._head_timeout_seconds, self._head_timeout
        )

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        # An idle keep-alive connection is uvicorn's to close; only a head
        # that has started and not finished is refused here.
        if self._in_head and self._head_bytes and not self.transport.is_closing():
            self._refuse(408, "request_timeout", "The request head took too long.")
        elif self._in_head and not self._head_bytes and not self.transport.is_closing():
            self.transport.close()


class UvicornWorker(BaseUvicornWorker):
    """The gunicorn worker ``palo serve`` runs."""

    CONFIG_KWARGS: dict[str, Any] = {  # noqa: RUF012 - uvicorn_worker's own API
        "loop": "auto",
        "http": GuardedHttpToolsProtocol,
        # No WebSocket endpoints exist; an upgrade request is plain HTTP here.
        "ws": "none",
        "server_header": False,
    }
