"""Operations seen from outside: `palo serve` and `palo worker` as real processes.

The request log and the metrics of several gunicorn workers, a graceful stop
on SIGTERM, the database going away and coming back, and the settings that
stop start-up. Each test starts its own processes on the test database.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from palo_api.db.engine import POSTGRES_CONNECT_TIMEOUT_SECONDS
from palo_api.db.models import Project
from palo_api.runtime import Runtime
from palo_api.services import webhooks
from palo_api.services.auth import Principal
from tests.conftest import Account, Factory
from tests.processes import (
    PALO,
    free_port,
    palo_env,
    running_receiver,
    start_server,
    start_worker,
    wait_until_up,
)
from tests.test_auth import bearer
from tests.test_worker import settle_earlier_tests

pytestmark = pytest.mark.slow

# gunicorn's --graceful-timeout in `palo serve`.
GRACEFUL_SECONDS = 20


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    port: int,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: Any = None,
    form: str | None = None,
    timeout: float = 10,
) -> Reply:
    """One request on a connection of its own, so any worker may take it."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        sent = dict(headers or {})
        payload = None
        if body is not None:
            payload = json.dumps(body)
            sent["Content-Type"] = "application/json"
        elif form is not None:
            payload = form
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=payload, headers=sent)
        response = conn.getresponse()
        return Reply(
            response.status,
            {name.lower(): value for name, value in response.getheaders()},
            response.read(),
        )
    finally:
        conn.close()


@contextlib.contextmanager
def serving(
    url: str,
    port: int,
    *,
    log: Path | None = None,
    workers: int = 2,
    **extra: str,
) -> Iterator[subprocess.Popen[bytes]]:
    """`palo serve` up and answering; stopped (SIGTERM) on leaving the block."""
    with contextlib.ExitStack() as stack:
        stderr: Any = subprocess.DEVNULL
        if log is not None:
            stderr = stack.enter_context(log.open("ab"))
        process = start_server(url, port, workers=workers, stderr=stderr, **extra)
        try:
            wait_until_up(port, process)
            yield process
        finally:
            if process.poll() is None:
                process.terminate()
            process.wait(timeout=GRACEFUL_SECONDS + 10)


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def assert_service_unavailable(reply: Reply) -> None:
    """The specification's error format for 503, with a Retry-After."""
    assert reply.status == 503, reply.body
    assert reply.headers["content-type"] == "application/json"
    error = reply.json()
    assert error["error"] == "service_unavailable"
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error["request_id"] == reply.headers["x-request-id"]
    assert set(error) <= {"error", "message", "request_id", "details"}


# The request log ----------------------------------------------------------


def request_lines(log: str) -> dict[str, list[dict[str, Any]]]:
    """The JSON request-log records, by request id; fails on any other line."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for line in log.splitlines():
        record = json.loads(line)
        assert isinstance(record, dict), line
        assert {"event", "level", "logger", "time"} <= set(record), line
        if record["logger"] == "palo_api.requests":
            by_id.setdefault(record["request_id"], []).append(record)
    return by_id


@dataclass
class Sent:
    method: str
    path: str
    route: str | None
    status: int
    authenticated: bool


def test_json_log_has_one_line_per_request_with_its_fields_and_no_credentials(
    database_url: str, factory: Factory, tmp_path: Path
) -> None:
    account = factory.account()
    log = tmp_path / "serve.log"
    port = free_port()
    basic = base64.b64encode(
        f"{account.client_id}:{account.client_secret}".encode()
    ).decode()
    issued: list[str] = []
    sent: dict[str, Sent] = {}

    def send(expected: Sent, headers: dict[str, str], **kwargs: Any) -> Reply:
        request_id = str(uuid.uuid4())
        reply = call(
            port,
            expected.method,
            expected.path,
            headers={**headers, "X-Request-ID": request_id},
            **kwargs,
        )
        assert reply.status == expected.status, (expected, reply.body)
        sent[request_id] = expected
        return reply

    token = "/v1/auth/token"
    projects = "/v1/projects"
    with serving(
        database_url, port, log=log, PALO_LOG_FORMAT="json", PALO_LOG_LEVEL="INFO"
    ):
        credentials = {
            "client_id": account.client_id,
            "client_secret": account.client_secret,
        }
        reply = send(Sent("POST", token, token, 200, True), {}, body=credentials)
        issued.append(reply.json()["access_token"])
        reply = send(
            Sent("POST", token, token, 200, True),
            {"Authorization": f"Basic {basic}"},
            form="grant_type=client_credentials",
        )
        issued.append(reply.json()["access_token"])
        # A client that pasted its secret where its id goes.
        pasted = {"client_id": account.client_secret, "client_secret": "x"}
        send(Sent("POST", token, token, 401, False), {}, body=pasted)
        send(Sent("GET", projects, projects, 200, True), bearer(issued[0]))
        missing = f"/v1/projects/{uuid.uuid4()}"
        route = "/v1/projects/{project_id}"
        send(Sent("GET", missing, route, 404, True), bearer(issued[1]))
        send(Sent("GET", projects, projects, 401, False), {})
        send(Sent("GET", projects, projects, 401, False), bearer("x" * 40))
        auth = bearer(account.token)
        send(Sent("POST", projects, projects, 422, True), auth, body={})
        send(
            Sent("POST", projects, projects, 201, True),
            bearer(account.token),
            body={"name": "Logged"},
        )
        send(Sent("GET", "/v1/nowhere", None, 404, False), {})

    output = log.read_text()
    by_id = request_lines(output)
    for request_id, expected in sent.items():
        (record,) = by_id.get(request_id, [])
        assert record["method"] == expected.method
        assert record["route"] == expected.route
        assert record["path"] == expected.path
        assert record["status"] == expected.status
        assert isinstance(record["duration_ms"], int | float)
        assert record["duration_ms"] >= 0
        assert record["level"] == "info"
        if expected.authenticated:
            assert record["org_id"] == str(account.org_id)
            assert record["client_id"] == account.client_id
        else:
            assert record["org_id"] is None
    (refused_token,) = [
        by_id[request_id][0]
        for request_id, expected in sent.items()
        if expected.path == token and expected.status == 401
    ]
    assert refused_token["client_id"] == "[redacted]"
    for secret in (account.client_secret, account.token, basic, *issued):
        assert secret not in output


def test_text_log_has_one_readable_line_per_request(
    database_url: str, factory: Factory, tmp_path: Path
) -> None:
    account = factory.account()
    log = tmp_path / "serve.log"
    port = free_port()
    sent = {}
    with serving(database_url, port, log=log, workers=1, PALO_LOG_LEVEL="INFO"):
        for headers, path, status in [
            (bearer(account.token), "/v1/projects", 200),
            (bearer(account.token), f"/v1/projects/{uuid.uuid4()}", 404),
            ({}, "/v1/projects", 401),
        ]:
            request_id = str(uuid.uuid4())
            reply = call(
                port, "GET", path, headers={**headers, "X-Request-ID": request_id}
            )
            assert reply.status == status
            sent[request_id] = (path, status)

    lines = log.read_text().splitlines()
    for request_id, (path, status) in sent.items():
        (line,) = [line for line in lines if request_id in line]
        route = "/v1/projects/{project_id}" if status == 404 else path
        assert not line.startswith("{")
        assert f"GET {route} {status}" in line
        assert "palo_api.requests" in line
        assert f"path={path}" in line
    assert account.token not in log.read_text()


# Metrics --------------------------------------------------------------------


def sample(exposition: str, name: str, **labels: str) -> float:
    """The value of one sample in a scrape, 0 when it is absent."""
    for family in text_string_to_metric_families(exposition):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return 0.0


def per_process(
    directory: Path, name: str, method: str, route: str, status: str
) -> dict[str, float]:
    """One request counter's value in each process's file, by file name."""
    labels = {"method": method, "route": route, "status": status}
    values = {}
    for path in directory.glob("counter_*.db"):
        merged = MultiProcessCollector.merge([str(path)], accumulate=True)
        values[path.name] = sum(
            found.value
            for family in merged
            for found in family.samples
            if found.name == name and found.labels == labels
        )
    return values


def test_request_counts_add_up_across_workers_and_restart_from_zero(
    database_url: str, factory: Factory, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    account = factory.account()
    port = free_port()
    # Where `palo serve` keeps the workers' files without PALO_METRICS_DIR.
    directory = Path(tempfile.gettempdir(), f"palo-metrics-{port}")
    labels = {"method": "GET", "route": "/v1/projects", "status": "200"}
    try:
        with serving(database_url, port, log=log):
            # The server answers as soon as one worker is up; wait for both.
            probe = ("palo_http_requests_total", "GET", "/healthz", "200")
            deadline = time.monotonic() + 30
            while sum(1 for n in per_process(directory, *probe).values() if n) < 2:
                assert time.monotonic() < deadline, "the second worker never answered"
                for _ in range(5):
                    assert call(port, "GET", "/healthz").status == 200
                time.sleep(0.2)
            with ThreadPoolExecutor(max_workers=6) as pool:
                statuses = list(
                    pool.map(
                        lambda _: (
                            call(
                                port,
                                "GET",
                                "/v1/projects",
                                headers=bearer(account.token),
                            ).status
                        ),
                        range(60),
                    )
                )
            assert statuses == [200] * 60, log.read_text()[-3000:]
            # Both workers answered some: a scrape must add up their files.
            served = per_process(directory, "palo_http_requests_total", **labels)
            assert sum(served.values()) == 60
            assert sum(1 for count in served.values() if count) == 2, served
            for _ in range(6):
                scrape = call(port, "GET", "/metrics")
                assert scrape.status == 200
                text = scrape.body.decode()
                assert sample(text, "palo_http_requests_total", **labels) == 60

        with serving(database_url, port):
            text = call(port, "GET", "/metrics").body.decode()
            assert sample(text, "palo_http_requests_total", **labels) == 0
            assert (
                sample(
                    text,
                    "palo_http_requests_total",
                    method="GET",
                    route="/v1/openapi.json",
                    status="200",
                )
                >= 1
            )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# Graceful stop -------------------------------------------------------------


@contextlib.contextmanager
def projects_write_locked(database_url: str, runtime: Runtime) -> Iterator[None]:
    """Hold the lock a new project needs until the block ends."""
    if database_url.startswith("sqlite"):
        path = make_url(database_url).database
        assert path
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            yield
            holder.execute("ROLLBACK")
        finally:
            holder.close()
        return
    with runtime.database.engine.connect() as holder:
        holder.execute(sa.text("LOCK TABLE projects IN EXCLUSIVE MODE"))
        yield
        holder.rollback()


def test_sigterm_lets_the_request_in_flight_finish_and_exits_cleanly(
    database_url: str, runtime: Runtime, factory: Factory
) -> None:
    account = factory.account()
    port = free_port()
    name = f"In flight {uuid.uuid4().hex[:8]}"
    replies: list[Reply] = []

    def create() -> None:
        replies.append(
            call(
                port,
                "POST",
                "/v1/projects",
                headers=bearer(account.token),
                body={"name": name},
                timeout=30,
            )
        )

    with serving(database_url, port) as server:
        with projects_write_locked(database_url, runtime):
            in_flight = threading.Thread(target=create)
            in_flight.start()
            time.sleep(1)
            assert in_flight.is_alive(), "the request was not held by the lock"
            server.send_signal(signal.SIGTERM)
            time.sleep(1)
            # The workers stop listening at once: a new client is refused
            # rather than left waiting for an answer that never comes.
            assert refused(port)
            assert server.poll() is None
        stopped_at = time.monotonic()
        in_flight.join(timeout=15)
        assert not in_flight.is_alive()
        assert replies[0].status == 201, replies[0].body
        assert server.wait(timeout=GRACEFUL_SECONDS) == 0
        assert time.monotonic() - stopped_at < GRACEFUL_SECONDS

    with runtime.database.read() as session:
        assert session.scalar(sa.select(Project.id).where(Project.name == name))


# The database goes away ----------------------------------------------------


class Proxy:
    """A TCP forwarder that can be stopped, with every connection cut, or
    started as a black hole: connections accepted and never answered."""

    def __init__(self, target: tuple[str, int], port: int) -> None:
        self.target = target
        self.port = port
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.forwarding = True

    def start(self, *, forward: bool = True) -> None:
        self.forwarding = forward
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(32)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        assert self.listener is not None
        # Closing alone would leave the accept() blocked in our thread
        # accepting: shutting the socket down first wakes it.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self.lock:
            cut, self.sockets = self.sockets, []
        for sock in cut:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if not self.forwarding:
                with self.lock:
                    self.sockets.append(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump, args=(source, sink), daemon=True
                ).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def timed_call(
    port: int, method: str, path: str, *, within: float = 5, **kwargs: Any
) -> Reply:
    """A request that must be answered within a few seconds."""
    began = time.monotonic()
    reply = call(port, method, path, timeout=within + 5, **kwargs)
    assert time.monotonic() - began < within, f"{method} {path} took too long"
    return reply


def test_database_outage_answers_503_and_recovers_without_a_restart(
    database_url: str, factory: Factory
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("an embedded SQLite database cannot become unreachable")
    account = factory.account()
    real = make_url(database_url)
    proxy = Proxy((real.host or "127.0.0.1", real.port or 5432), free_port())
    proxied = real.set(host="127.0.0.1", port=proxy.port)
    auth = bearer(account.token)
    proxy.start()
    port = free_port()
    try:
        with serving(proxied.render_as_string(hide_password=False), port):
            assert call(port, "GET", "/v1/projects", headers=auth).status == 200
            assert call(port, "GET", "/readyz").status == 200

            proxy.stop()
            for _ in range(4):
                assert_service_unavailable(
                    timed_call(port, "GET", "/v1/projects", headers=auth)
                )
            assert_service_unavailable(
                timed_call(
                    port,
                    "POST",
                    "/v1/projects",
                    headers=auth,
                    body={"name": "During the outage"},
                )
            )
            for _ in range(2):
                assert_service_unavailable(timed_call(port, "GET", "/readyz"))
            assert timed_call(port, "GET", "/healthz").status == 200

            # A database host that takes connections and never answers: each
            # attempt gives up after the connect timeout instead of hanging.
            proxy.start(forward=False)
            within = POSTGRES_CONNECT_TIMEOUT_SECONDS + 3
            with ThreadPoolExecutor(max_workers=3) as pool:
                hung = [
                    pool.submit(timed_call, port, "GET", path, within=within, **kw)
                    for path, kw in [
                        ("/v1/projects", {"headers": auth}),
                        ("/v1/projects", {"headers": auth}),
                        ("/readyz", {}),
                    ]
                ]
                for future in hung:
                    assert_service_unavailable(future.result())
            assert timed_call(port, "GET", "/healthz").status == 200
            proxy.stop()

            proxy.start()
            deadline = time.monotonic() + 5
            while True:
                reply = timed_call(port, "GET", "/v1/projects", headers=auth)
                if reply.status == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert reply.status == 200, reply.body
            # The project refused during the outage was not made.
            assert reply.json()["pagination"]["total"] == 0
            for _ in range(4):
                reply = timed_call(port, "GET", "/v1/projects", headers=auth)
                assert reply.status == 200
                assert timed_call(port, "GET", "/readyz").status == 200
    finally:
        with contextlib.suppress(AssertionError):
            proxy.stop()


# Start-up refusals and production mode -------------------------------------


def run_serve(
    env: dict[str, str], port: int, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PALO), "serve", "--port", str(port), "--workers", "1"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_production_without_signing_keys_refuses_to_start(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = palo_env(database_url, PALO_ENV="production")
    del env["PALO_SIGNING_KEYS"]
    env["PALO_SIGNING_KEY_FILE"] = str(tmp_path / "signing-key")

    began = time.monotonic()
    result = run_serve(env, port, tmp_path)

    assert result.returncode != 0
    assert time.monotonic() - began < 15
    assert "PALO_SIGNING_KEYS" in result.stderr
    assert "gunicorn" not in result.stderr
    assert refused(port)


def test_production_with_signing_keys_serves_and_logs_json(
    database_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    port = free_port()
    request_id = str(uuid.uuid4())
    with serving(
        database_url,
        port,
        log=log,
        workers=1,
        PALO_ENV="production",
        PALO_LOG_LEVEL="INFO",
    ):
        reply = call(port, "GET", "/v1/projects", headers={"X-Request-ID": request_id})
        assert reply.status == 401

    (record,) = request_lines(log.read_text())[request_id]
    assert record["status"] == 401
    assert record["route"] == "/v1/projects"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PALO_LOG_FORMAT", "xml"),
        ("PALO_SIGNING_KEYS", "short:secret"),
        # A directory that cannot be made: its parent is a file.
        ("PALO_METRICS_DIR", "{tmp}/a-file/metrics"),
    ],
)
def test_a_bad_setting_stops_palo_serve_naming_it(
    database_url: str, tmp_path: Path, name: str, value: str
) -> None:
    (tmp_path / "a-file").write_text("")
    port = free_port()
    env = palo_env(database_url, **{name: value.format(tmp=tmp_path)})

    result = run_serve(env, port, tmp_path)

    assert result.returncode != 0
    assert name in result.stderr
    assert "gunicorn" not in result.stderr
    assert refused(port)


# The webhook worker --------------------------------------------------------


def scrape_until(port: int, done: Any, seconds: float) -> str:
    """Scrape ``port`` until ``done(text)`` holds; the last scrape's text."""
    deadline = time.monotonic() + seconds
    text = ""
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            text = call(port, "GET", "/metrics", timeout=5).body.decode()
            if done(text):
                return text
        time.sleep(0.1)
    return text


def test_worker_serves_its_delivery_counts_and_stops_on_sigterm(
    database_url: str,
    runtime: Runtime,
    client: Any,
    factory: Factory,
    admin_account: Account,
) -> None:
    settle_earlier_tests(runtime)
    principal = Principal(
        user_id=admin_account.user_id,
        org_id=admin_account.org_id,
        org_role="admin",
        plan="enterprise",
        client_id=admin_account.client_id,
        auth_time=int(time.time()),
    )
    with running_receiver() as (receiver, receiver_port):
        # The first attempt fails and is retried; the second succeeds.
        receiver.fail = lambda _event, seen: seen == 0
        with runtime.database.write() as session:
            webhooks.create_webhook(
                session=session,
                principal=principal,
                webhook_in={
                    "url": f"http://127.0.0.1:{receiver_port}/hook",
                    "events": ["project.created"],
                },
            )
        factory.project(client, admin_account)
        metrics_port = free_port()
        worker = start_worker(database_url, "--metrics-port", str(metrics_port))
        try:
            receiver.wait_for(lambda: len(receiver.accepted()) == 1, 30)
            text = scrape_until(
                metrics_port,
                lambda text: (
                    sample(
                        text,
                        "palo_webhook_delivery_attempts_total",
                        outcome="succeeded",
                    )
                    == 1
                ),
                10,
            )
            attempts = "palo_webhook_delivery_attempts_total"
            assert sample(text, attempts, outcome="succeeded") == 1
            assert sample(text, attempts, outcome="retrying") == 1
            assert sample(text, attempts, outcome="gave_up") == 0

            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=15) == 0
            assert refused(metrics_port)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=10)
