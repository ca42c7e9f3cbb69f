"""Real processes for the tests that need them: `palo serve`, `palo worker`,
and a webhook receiver on loopback.

The server and the worker get the test database and the test signing keys;
their log output is thrown away unless a test asks for it (``stderr``).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import pytest

from tests.conftest import TEST_SIGNING_KEYS

PALO = Path(sys.executable).with_name("palo")
# Webhooks in the tests deliver to a receiver on loopback.
WEBHOOK_ENV = {"PALO_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true"}

Output = int | IO[Any]


def free_port() -> int:
    """A port nothing listens on now, chosen by the OS."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def palo_env(url: str, **extra: str) -> dict[str, str]:
    """The environment of a palo process on the test database.

    No PALO_* setting of the shell running the tests leaks into it.
    """
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("PALO_") and name != "PROMETHEUS_MULTIPROC_DIR"
    }
    return {
        **inherited,
        "PALO_DATABASE_URL": url,
        "PALO_SIGNING_KEYS": TEST_SIGNING_KEYS,
        "PALO_LOG_LEVEL": "WARNING",
        **extra,
    }


def start_server(
    url: str,
    port: int,
    *,
    workers: int = 2,
    stderr: Output = subprocess.DEVNULL,
    **extra: str,
) -> subprocess.Popen[bytes]:
    """`palo serve` on ``port``; ``extra`` adds or overrides PALO_* settings."""
    return subprocess.Popen(
        [str(PALO), "serve", "--port", str(port), "--workers", str(workers)],
        env=palo_env(url, **extra),
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )


def wait_until_up(port: int, process: subprocess.Popen[bytes]) -> None:
    """Wait until the server answers a request, failing if it exits first."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "palo serve exited"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/v1/openapi.json")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
        finally:
            conn.close()
    pytest.fail("palo serve did not start")


def start_worker(
    url: str, *options: str, stderr: Output = subprocess.DEVNULL
) -> subprocess.Popen[bytes]:
    """`palo worker` polling often and retrying soon, plus ``options``."""
    command = [str(PALO), "worker", "--poll-interval", "0.1"]
    command += ["--lease-seconds", "15", "--first-retry", "0.5", *options]
    return subprocess.Popen(
        command,
        env=palo_env(url, **WEBHOOK_ENV),
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )


@dataclass
class Received:
    event_id: str
    event_type: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Receiver:
    """Records every delivery; ``fail`` decides which ones to answer 500."""

    received: list[Received] = field(default_factory=list)
    fail: Callable[[dict[str, Any], int], bool] = lambda _event, _seen: False
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        event = json.loads(body)
        time.sleep(self.delay)
        with self.lock:
            seen = sum(1 for r in self.received if r.event_id == event["id"])
            status = 500 if self.fail(event, seen) else 204
            self.received.append(
                Received(event["id"], event["type"], headers, body, status)
            )
        return status

    def accepted(self) -> dict[str, Received]:
        with self.lock:
            return {r.event_id: r for r in self.received if r.status < 300}

    def wait_for(self, predicate: Callable[[], bool], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        pytest.fail(f"not delivered in {seconds} s; received {len(self.received)}")


@contextmanager
def running_receiver() -> Iterator[tuple[Receiver, int]]:
    """A webhook receiver on loopback: its state and its port."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = state.handle({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
