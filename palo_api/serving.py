"""How gunicorn runs the app: uvicorn workers with limits on request heads.

uvicorn's httptools parser puts no bound on the size of a request head and no
time limit on receiving it: one client sending a 100 MB header, or trickling
one byte at a time, can stall a worker; nor does it time out a body that
stops arriving. The protocol below refuses a head over 64 KiB (431), finished
or not, a head unfinished or a body paused for PALO_HEAD_TIMEOUT_SECONDS
(30 by default; 408), and answers malformed HTTP in the specification's JSON
error format, not uvicorn's text.
"""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from collections.abc import Callable
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
    """uvicorn's httptools protocol with size and time limits on each request.

    Two counts enforce the size limit on a head: the bytes received while it
    is unfinished (the parser buffers a header until its end, so a huge one is
    caught while it arrives), and the parsed request line and header fields
    (exact, for a head that arrives whole in one read). A head, or a pause in
    a body, longer than PALO_HEAD_TIMEOUT_SECONDS answers 408.

    A refusal caused by a later, pipelined request waits until the requests
    before it are answered; one caused by the current request's own bytes
    ends that request at once.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._parsed_head_bytes = 0
        self._head_started = False  # a byte of the current head has arrived
        self._timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._pending_refusal: tuple[int, str, str] | None = None
        self._timeout_seconds = _head_timeout_seconds()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self._head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # draining what the client still sends after a refusal
        continuing = self._head_started
        super().data_received(data)
        # Only reads that continue a head already started are counted: the
        # read in which a head starts may also hold the end of an earlier
        # request, body and all. What that one read adds, at most 256 KiB,
        # is bounded, and the parsed count sees every field once complete.
        if continuing and self._head_started and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse_large_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_started = True
        self._head_bytes = 0
        self._parsed_head_bytes = 0
        self._arm(self._head_timeout)

    def on_url(self, url: bytes) -> None:
        self._count_parsed(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_parsed(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_started = False
        super().on_headers_complete()
        # Disarmed again by on_message_complete, at once when there is no body.
        self._arm(self._body_timeout)

    def on_body(self, body: bytes) -> None:
        self._arm(self._body_timeout)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._head_started and self.timeout_keep_alive_task is not None:
            # The next request has begun arriving: it is not an idle
            # connection for uvicorn to close, but a head for the head timer.
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None
        pending = self._pending_refusal
        if pending and not self.pipeline and self.cycle.response_complete:
            self._pending_refusal = None
            if not self.transport.is_closing():
                self._write_refusal(*pending)

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "invalid_request", "The HTTP request is malformed.")

    def _count_parsed(self, size: int) -> None:
        self._parsed_head_bytes += size
        if self._parsed_head_bytes > MAX_HEAD_BYTES:
            self._refuse_large_head()
            # httptools turns this into HttpParserError, which uvicorn
            # answers through send_400_response: already refused, so ignored.
            raise _HeadTooLarge

    def _refuse_large_head(self) -> None:
        self._refuse(
            431,
            "request_header_too_large",
            f"The request line and headers exceed {MAX_HEAD_BYTES} bytes.",
        )

    def _refuse(self, status: int, code: str, message: str) -> None:
        self._disarm()
        if self._refused:
            return
        self._refused = True
        self.logger.warning("refused request: %s", code)
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if not cycle.more_body:
                # The fault is in a later request: answer the earlier ones.
                self._pending_refusal = (status, code, message)
                return
            # The fault is in this request's own body: it ends here.
            cycle.disconnected = True
            cycle.message_event.set()
            if cycle.response_started:
                self.transport.close()
                return
        self._write_refusal(status, code, message)

    def _write_refusal(self, status: int, code: str, message: str) -> None:
        self.transport.write(raw_error_response(status, code, message))
        # Closing with unread input makes the kernel send RST, which can
        # destroy the answer before the client reads it: stop writing, keep
        # draining the client's input for a moment, then close.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _arm(self, callback: Callable[[], None]) -> None:
        self._disarm()
        self._timer = self.loop.call_later(self._timeout_seconds, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timeout(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        # An idle connection is closed without a word; a head that has
        # started and not finished is refused.
        if self._head_started:
            self._refuse(408, "request_timeout", "The request head took too long.")
        else:
            self.transport.close()

    def _body_timeout(self) -> None:
        self._timer = None
        cycle = self.cycle
        if self.transport.is_closing() or cycle is None or not cycle.more_body:
            return
        if cycle.response_started:
            # Answered without its whole body (a refusal, say): nothing left
            # to say, and the rest of the body will not come.
            cycle.disconnected = True
            cycle.message_event.set()
            self.transport.close()
            return
        self._refuse(408, "request_timeout", "The request body stopped arriving.")


class UvicornWorker(BaseUvicornWorker):
    """The gunicorn worker ``palo serve`` runs."""

    CONFIG_KWARGS: dict[str, Any] = {  # noqa: RUF012 - uvicorn_worker's own API
        "loop": "auto",
        "http": GuardedHttpToolsProtocol,
        # No WebSocket endpoints exist; an upgrade request is plain HTTP here.
        "ws": "none",
        "server_header": False,
    }
