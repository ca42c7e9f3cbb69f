"""The guarded HTTP protocol fed exact reads, so each case is deterministic.

A real socket decides for itself how the bytes it carries are split into
reads; these tests choose the split, which is what the head limits depend on.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from palo_api import serving
from palo_api.serving import MAX_HEAD_BYTES, GuardedHttpToolsProtocol

TIMEOUT = 0.3  # head and body timeout in these tests
KEEP_ALIVE = 0.1  # shorter, so that it would win any race it could enter


class FakeTransport(asyncio.Transport):
    """Collects what the protocol writes."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 40000)}.get(
            name, default
        )


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the whole body, answers 200 with its size."""
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = json.dumps({"path": scope["path"], "size": size}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def statuses(written: bytes) -> list[int]:
    """The status of each response written, in order (bodies hold no such text)."""
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", written)]


async def feed(reads: list[bytes], settle: float = 0.05) -> FakeTransport:
    """Feed each read to a fresh protocol, letting the app run in between."""
    config = Config(app=echo_app, timeout_keep_alive=KEEP_ALIVE, log_level="critical")
    config.load()
    protocol = GuardedHttpToolsProtocol(
        config=config,
        server_state=ServerState(),
        app_state={},
        _loop=asyncio.get_running_loop(),
    )
    transport = FakeTransport()
    protocol.connection_made(transport)
    for data in reads:
        protocol.data_received(data)
        await asyncio.sleep(settle)
    await asyncio.sleep(TIMEOUT * 2)
    protocol.connection_lost(None)
    return transport


@pytest.fixture(autouse=True)
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serving, "_head_timeout_seconds", lambda: TIMEOUT)


def post(body: bytes) -> bytes:
    return (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


GET = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"


def test_small_head_starting_in_the_read_that_ends_a_large_body_is_served() -> None:
    big = post(b"x" * (MAX_HEAD_BYTES * 2))
    # The second read ends the POST's body and starts the GET's head.
    reads = [big[:1000], big[1000:] + GET[:10], GET[10:]]

    transport = asyncio.run(feed(reads))

    assert statuses(transport.written) == [200, 200]


def test_long_head_continuing_over_reads_is_refused() -> None:
    head = b"GET /next HTTP/1.1\r\nHost: x\r\nX-Big: "
    reads = [head, b"a" * (MAX_HEAD_BYTES // 2), b"a" * (MAX_HEAD_BYTES // 2 + 10)]

    transport = asyncio.run(feed(reads))

    assert statuses(transport.written) == [431]


def test_partial_head_left_after_an_answer_gets_408_not_a_silent_close() -> None:
    transport = asyncio.run(feed([GET + b"GET /ne"]))

    assert statuses(transport.written) == [200, 408]
    assert b'"request_timeout"' in transport.written


def test_idle_connection_after_an_answer_closes_without_a_word() -> None:
    transport = asyncio.run(feed([GET]))

    assert statuses(transport.written) == [200]
    assert transport.closed
