"""Quotas and login throttling are exact across processes and hosts.

Two `palo serve` servers (two "hosts", two gunicorn workers each) share the
test database; several client processes fire at both at once.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from palo_api.config import Settings
from palo_api.db.models import LoginThrottle
from palo_api.runtime import Runtime
from palo_api.services.throttle import address_key
from tests.conftest import Factory
from tests.processes import free_port, start_server, wait_until_up
from tests.test_quotas import set_used, used_today

pytestmark = pytest.mark.slow

LEFT = 30
CLIENT_PROCESSES = 4
REQUESTS_PER_PROCESS = 25


@pytest.fixture
def two_hosts(database_url: str) -> Iterator[list[int]]:
    ports = [free_port(), free_port()]
    processes = [start_server(database_url, port) for port in ports]
    try:
        for port, process in zip(ports, processes, strict=True):
            wait_until_up(port, process)
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def _get(port: int, token: str) -> tuple[int, str | None, str | None]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(
            "GET", "/v1/projects", headers={"Authorization": f"Bearer {token}"}
        )
        response = conn.getresponse()
        response.read()
        return (
            response.status,
            response.getheader("X-RateLimit-Remaining"),
            response.getheader("Retry-After"),
        )
    finally:
        conn.close()


def _fire(
    ports: list[int], token: str, count: int, start_at: float
) -> list[tuple[int, str | None, str | None]]:
    """One client process: ``count`` requests at once, spread over the hosts."""
    time.sleep(max(start_at - time.time(), 0))
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [
            pool.submit(_get, ports[i % len(ports)], token) for i in range(count)
        ]
        return [future.result() for future in futures]


def test_exactly_the_quota_is_served_across_processes_and_hosts(
    two_hosts: list[int], factory: Factory, runtime: Runtime
) -> None:
    account = factory.account(factory.org("business"))
    set_used(runtime, account.org_id, 1000 - LEFT)
    start_at = time.time() + 2

    context = multiprocessing.get_context("spawn")
    with context.Pool(CLIENT_PROCESSES) as pool:
        batches = pool.starmap(
            _fire,
            [(two_hosts, account.token, REQUESTS_PER_PROCESS, start_at)]
            * CLIENT_PROCESSES,
        )
    results = [result for batch in batches for result in batch]

    served = [remaining for status, remaining, _ in results if status == 200]
    refused = [retry for status, _, retry in results if status == 429]
    assert len(results) == CLIENT_PROCESSES * REQUESTS_PER_PROCESS
    assert len(served) == LEFT
    assert len(refused) == len(results) - LEFT
    # Each remaining count was handed out exactly once.
    assert sorted(int(r) for r in served if r is not None) == list(range(LEFT))
    assert all(retry is not None and int(retry) > 0 for retry in refused)
    assert used_today(runtime, account.org_id) == 1000


def _post_token(port: int, client_id: str, secret: str) -> tuple[int, str | None]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        body = json.dumps({"client_id": client_id, "client_secret": secret})
        conn.request(
            "POST",
            "/v1/auth/token",
            body=body,
            headers={"Content-Type": "application/json"},
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read()).get("error")
    finally:
        conn.close()


def _guess(
    ports: list[int], client_id: str, count: int, start_at: float
) -> list[tuple[int, str | None]]:
    """One attacker process: ``count`` wrong secrets at once over the hosts."""
    time.sleep(max(start_at - time.time(), 0))
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [
            pool.submit(_post_token, ports[i % len(ports)], client_id, f"guess-{i}")
            for i in range(count)
        ]
        return [future.result() for future in futures]


def _forget_logins(runtime: Runtime) -> None:
    with runtime.database.write() as session:
        session.execute(sa.delete(LoginThrottle))
        session.commit()


def test_a_burst_of_guesses_gets_exactly_the_allowed_failures(
    two_hosts: list[int], factory: Factory, settings: Settings, runtime: Runtime
) -> None:
    account = factory.account()
    _forget_logins(runtime)
    start_at = time.time() + 2

    context = multiprocessing.get_context("spawn")
    with context.Pool(CLIENT_PROCESSES) as pool:
        batches = pool.starmap(
            _guess,
            [(two_hosts, account.client_id, 10, start_at)] * CLIENT_PROCESSES,
        )
    answers = [answer for batch in batches for answer in batch]

    # Every guess took its place before its secret was checked, so no more
    # than the allowed number reached the check, however many ran at once.
    assert answers.count((401, "invalid_client")) == settings.login_max_failures
    assert answers.count((429, "too_many_attempts")) == (
        len(answers) - settings.login_max_failures
    )


@pytest.mark.parametrize(
    ("trusted", "counted_as"),
    [
        ({}, "198.51.100.77"),
        ({"PALO_TRUSTED_PROXIES": "192.0.2.1"}, "127.0.0.1"),
    ],
    ids=["from a trusted proxy", "from anyone else"],
)
def test_the_forwarded_address_counts_only_from_a_trusted_proxy(
    database_url: str, runtime: Runtime, trusted: dict[str, str], counted_as: str
) -> None:
    port = free_port()
    process = start_server(database_url, port, **trusted)
    try:
        wait_until_up(port, process)
        _forget_logins(runtime)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request(
            "POST",
            "/v1/auth/token",
            body=json.dumps({"client_id": "cli_x", "client_secret": "guess"}),
            headers={
                "Content-Type": "application/json",
                "X-Forwarded-For": "198.51.100.77",
            },
        )
        assert conn.getresponse().status == 401
        conn.close()
    finally:
        process.terminate()
        process.wait(timeout=30)

    with runtime.database.read() as session:
        keys = set(session.scalars(sa.select(LoginThrottle.key)))
    assert address_key(counted_as) in keys
    assert len(keys) == 2


def _login(
    ports: list[int], client_id: str, secret: str, count: int, start_at: float
) -> list[tuple[int, str | None]]:
    """One process: ``count`` logins with the right secret at once."""
    time.sleep(max(start_at - time.time(), 0))

    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [
            pool.submit(_post_token, ports[i % len(ports)], client_id, secret)
            for i in range(count)
        ]
        return [future.result() for future in futures]


def test_a_burst_of_right_secrets_is_never_throttled(
    two_hosts: list[int], factory: Factory, settings: Settings, runtime: Runtime
) -> None:
    account = factory.account()
    _forget_logins(runtime)
    start_at = time.time() + 2

    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        batches = pool.starmap(
            _login,
            [(two_hosts, account.client_id, account.client_secret, 15, start_at)] * 2,
        )
    answers = [answer for batch in batches for answer in batch]

    # Three times the client's failure limit, all at once, none failing.
    assert len(answers) == 3 * settings.login_max_failures
    assert answers == [(200, None)] * len(answers)
