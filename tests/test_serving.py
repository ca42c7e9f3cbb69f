"""The production server (`palo serve`): limits on request heads, JSON errors.

These tests start a real gunicorn process, since the limits live below the
ASGI app, in the worker's HTTP protocol.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from palo_api.db import migrate
from palo_api.serving import MAX_HEAD_BYTES
from tests.conftest import TEST_SIGNING_KEYS
from tests.processes import free_port

pytestmark = pytest.mark.slow


HEAD_TIMEOUT = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    database = tmp_path_factory.mktemp("serve") / "serve.db"
    url = f"sqlite:///{database}"
    migrate.upgrade(url)
    port = free_port()
    env = {
        **os.environ,
        "PALO_DATABASE_URL": url,
        "PALO_SIGNING_KEYS": TEST_SIGNING_KEYS,
        "PALO_LOG_LEVEL": "WARNING",
        "PALO_HEAD_TIMEOUT_SECONDS": str(HEAD_TIMEOUT),
    }
    palo = Path(sys.executable).with_name("palo")
    process = subprocess.Popen(
        [str(palo), "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("palo serve did not start")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def _exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        # The server may answer before reading all we send.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.sendall(raw)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def _assert_spec_error(status: int, headers: dict[str, str], body: bytes) -> dict:
    assert headers["content-type"] == "application/json"
    error = json.loads(body)
    assert {"error", "message", "request_id"} <= set(error) <= {
        "error", "message", "request_id", "details"
    }  # fmt: skip
    assert error["request_id"] == headers["x-request-id"]
    uuid.UUID(error["request_id"])
    return error


def test_ordinary_request_is_served(server: int) -> None:
    status, headers, _ = _exchange(
        server, b"GET /v1/projects HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )

    assert status == 401
    assert "x-request-id" in headers
    assert "server" not in headers


def _head_with_header_of(size: int) -> bytes:
    filler = b"a" * (size - len(b"X-Big: \r\n"))
    return b"GET /v1/projects HTTP/1.1\r\nHost: x\r\nX-Big: " + filler + b"\r\n\r\n"


# Just over the limit arrives in one read, so only the parsed count sees it;
# the larger ones are refused while they arrive, before the head ends.
@pytest.mark.parametrize(
    "raw",
    [
        _head_with_header_of(MAX_HEAD_BYTES + 1),
        _head_with_header_of(MAX_HEAD_BYTES + 5000),
        _head_with_header_of(MAX_HEAD_BYTES * 5),
        _head_with_header_of(4 << 20),
        b"GET /v1/projects?q="
        + b"a" * MAX_HEAD_BYTES
        + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["header 1 byte over", "header 5000 over", "header 5x", "header 4 MiB", "url"],
)
def test_oversized_request_head_answers_431_in_spec_format(
    server: int, raw: bytes
) -> None:
    status, headers, body = _exchange(server, raw)

    assert status == 431
    assert (
        _assert_spec_error(status, headers, body)["error"] == "request_header_too_large"
    )


def test_head_just_under_the_limit_is_served(server: int) -> None:
    filler = b"a" * (MAX_HEAD_BYTES - 200)
    raw = (
        b"GET /v1/projects HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: "
        + filler
        + b"\r\n\r\n"
    )

    status, _, _ = _exchange(server, raw)

    assert status == 401


def test_large_body_with_small_head_is_not_mistaken_for_a_long_head(
    server: int,
) -> None:
    body = json.dumps({"client_id": "x", "client_secret": "s" * 200_000}).encode()
    raw = (
        b"POST /v1/auth/token HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )

    status, headers, reply = _exchange(server, raw)

    # The app read and validated the body: the secret is over its maxLength.
    assert status == 422
    assert _assert_spec_error(status, headers, reply)["error"] == "validation_failed"


@pytest.mark.parametrize(
    "raw",
    [
        b"FOO /v1/projects HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /v1/projects HTTP/9.9\r\nHost: x\r\n\r\n",
        b"POST /v1/projects HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST /v1/projects HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /v1/pro jects HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /v1/projects HTTP/1.1\r\nConnection: close\r\n\r\n",
    ],
    ids=[
        "unknown method",
        "unknown version",
        "negative length",
        "bad chunk",
        "space",
        "no host",
    ],
)
def test_malformed_http_answers_400_in_spec_format(server: int, raw: bytes) -> None:
    status, headers, body = _exchange(server, raw)

    assert status == 400
    assert _assert_spec_error(status, headers, body)["error"] == "invalid_request"


def test_websocket_upgrade_is_answered_as_plain_http(server: int) -> None:
    raw = (
        b"GET /v1/projects HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\n"
        b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )

    status, _, body = _exchange(server, raw)

    assert status == 401
    assert json.loads(body)["error"] == "unauthenticated"


def test_request_head_trickled_too_slowly_answers_408(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server), timeout=10) as conn:
        conn.sendall(b"GET /v1/projects HTTP/1.1\r\nHost: x\r\n")
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk

    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert json.loads(body)["error"] == "request_timeout"


def _read_all(conn: socket.socket) -> bytes:
    reply = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := conn.recv(65536):
            reply += chunk
    return reply


def _responses(reply: bytes) -> list[tuple[int, dict[str, Any]]]:
    """Split pipelined responses, each with a Content-Length, into (status, body)."""
    found = []
    while reply:
        head, _, rest = reply.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length:")
        )
        found.append((int(lines[0].split()[1]), json.loads(rest[:length])))
        reply = rest[length:]
    return found


def test_malformed_pipelined_request_waits_for_the_answers_before_it(
    server: int,
) -> None:
    good = b"GET /v1/projects HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server), timeout=10) as conn:
        conn.sendall(good + good + b"BOGUS\r\n\r\n")
        reply = _read_all(conn)

    statuses = [status for status, _ in _responses(reply)]
    assert statuses == [401, 401, 400]
    assert _responses(reply)[2][1]["error"] == "invalid_request"


def test_request_body_that_stops_arriving_answers_408(server: int) -> None:
    head = (
        b"POST /v1/auth/token HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server), timeout=10) as conn:
        conn.sendall(head + b'{"client_')
        started = time.monotonic()
        reply = _read_all(conn)
        waited = time.monotonic() - started

    [(status, error)] = _responses(reply)
    assert status == 408
    assert error["error"] == "request_timeout"
    assert HEAD_TIMEOUT - 0.5 <= waited < HEAD_TIMEOUT + 5


def test_body_arriving_slowly_but_steadily_is_served(server: int) -> None:
    body = json.dumps({"client_id": "palo_ci_nobody", "client_secret": "s" * 30})
    head = (
        "POST /v1/auth/token HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    pieces = [body[:10], body[10:30], body[30:]]
    with socket.create_connection(("127.0.0.1", server), timeout=10) as conn:
        conn.sendall(head)
        for piece in pieces:
            # Each pause is shorter than the timeout; all of them are longer.
            time.sleep(HEAD_TIMEOUT * 0.6)
            conn.sendall(piece.encode())
        reply = _read_all(conn)

    [(status, error)] = _responses(reply)
    assert status == 401
    assert error["error"] == "invalid_client"
