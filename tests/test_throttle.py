"""Throttling of failed token requests, per client id and per source address."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from palo_api.config import Settings
from palo_api.db.engine import Database
from palo_api.db.models import LoginThrottle
from palo_api.db.types import utcnow
from palo_api.runtime import Runtime
from palo_api.services.throttle import (
    PENDING_EXPIRY,
    AllPlacesPending,
    LoginThrottler,
    TooManyAttempts,
    address_key,
    client_key,
)
from tests.conftest import (
    Account,
    Factory,
    assert_error,
    backend_pid,
    terminate_backend,
)
from tests.response_check import ResponseChecker
from tests.test_auth import as_basic, as_form, as_json, request_token

_addresses = itertools.count(1)


@pytest.fixture
def address(app: Any, response_checker: ResponseChecker) -> Iterator[TestClient]:
    """A client calling from an address of its own (192.0.2.0/24 is TEST-NET-1)."""
    n = next(_addresses)
    host = f"192.0.2.{n % 250 + 1}" if n < 250 else f"198.51.100.{n % 250 + 1}"
    with TestClient(app, client=(host, 40000)) as test_client:
        test_client.event_hooks = {"response": [response_checker]}
        yield test_client


def attempt(client: TestClient, account: Account, secret: str | None = None) -> Any:
    return request_token(
        client, as_json, account.client_id, secret or account.client_secret
    )


def fail(client: TestClient, account: Account, times: int) -> None:
    for _ in range(times):
        response = attempt(client, account, "wrong-secret")
        assert_error(response, 401, "invalid_client")


def age_windows(runtime: Runtime, seconds: int) -> None:
    """Move every failure window ``seconds`` into the past."""
    with runtime.database.write() as session:
        for row in session.scalars(sa.select(LoginThrottle)):
            row.window_start -= timedelta(seconds=seconds)
        session.commit()


def open_windows_ago(runtime: Runtime, seconds: int) -> None:
    """Make every failure window have opened ``seconds`` before now.

    Set from the clock rather than moved by a delta, so that however long the
    failures took to make (argon2 on a loaded machine), the window has the
    time left that the test means.
    """
    with runtime.database.write() as session:
        for row in session.scalars(sa.select(LoginThrottle)):
            row.window_start = utcnow() - timedelta(seconds=seconds)
        session.commit()


def test_past_the_threshold_even_the_right_secret_is_refused(
    address: TestClient, settings: Settings, member_account: Account
) -> None:
    fail(address, member_account, settings.login_max_failures)

    refused = attempt(address, member_account)

    body = assert_error(refused, 429, "too_many_attempts")
    retry_after = int(refused.headers["Retry-After"])
    assert 0 < retry_after <= settings.login_window_seconds
    assert f"{retry_after} seconds" in body["message"]
    assert "x-ratelimit-limit" not in refused.headers


def test_the_right_secret_works_again_once_the_window_passes(
    address: TestClient, runtime: Runtime, settings: Settings, member_account: Account
) -> None:
    fail(address, member_account, settings.login_max_failures)
    assert attempt(address, member_account).status_code == 429

    open_windows_ago(runtime, settings.login_window_seconds - 5)
    still = attempt(address, member_account)
    open_windows_ago(runtime, settings.login_window_seconds + 1)
    again = attempt(address, member_account)

    assert_error(still, 429, "too_many_attempts")
    assert 0 < int(still.headers["Retry-After"]) <= 5
    assert again.status_code == 200, again.text


def test_successful_attempts_are_not_failures(
    address: TestClient, settings: Settings, member_account: Account
) -> None:
    for _ in range(settings.login_max_failures + 5):
        assert attempt(address, member_account).status_code == 200
    fail(address, member_account, settings.login_max_failures - 1)

    assert attempt(address, member_account).status_code == 200


def test_one_client_throttled_leaves_others_from_the_same_address_alone(
    address: TestClient, factory: Factory, settings: Settings, member_account: Account
) -> None:
    colleague = factory.account(member_account.org_id)
    fail(address, member_account, settings.login_max_failures)

    assert attempt(address, member_account).status_code == 429
    assert attempt(address, colleague).status_code == 200


def test_a_client_throttled_from_one_address_is_throttled_from_every_address(
    app: Any,
    settings: Settings,
    member_account: Account,
    response_checker: ResponseChecker,
) -> None:
    with (
        TestClient(app, client=("203.0.113.7", 1)) as first,
        TestClient(app, client=("203.0.113.8", 1)) as second,
    ):
        first.event_hooks = second.event_hooks = {"response": [response_checker]}
        fail(first, member_account, settings.login_max_failures)

        assert_error(attempt(second, member_account), 429, "too_many_attempts")


def test_an_address_is_throttled_across_client_ids(
    address: TestClient, factory: Factory, settings: Settings, member_account: Account
) -> None:
    per_client = settings.login_max_failures - 1
    unknown = iter(f"cli_unknown_{i}" for i in itertools.count())
    failures = 0
    while failures < settings.login_max_failures_per_address:
        for _ in range(
            min(per_client, settings.login_max_failures_per_address - failures)
        ):
            response = request_token(address, as_json, next(unknown), "guess")
            assert_error(response, 401, "invalid_client")
            failures += 1

    refused = attempt(address, member_account)

    body = assert_error(refused, 429, "too_many_attempts")
    assert int(refused.headers["Retry-After"]) > 0
    assert "from this address" in body["message"]
    assert "client" not in body["message"]


@pytest.mark.parametrize(
    "present", [as_json, as_form, as_basic], ids=["json", "form", "basic"]
)
def test_every_way_of_sending_credentials_shares_the_count(
    address: TestClient, settings: Settings, member_account: Account, present: Any
) -> None:
    others = [p for p in (as_json, as_form, as_basic) if p is not present]
    for i in range(settings.login_max_failures):
        way = others[i % 2]
        response = request_token(address, way, member_account.client_id, "wrong")
        assert_error(response, 401, "invalid_client")

    refused = request_token(
        address, present, member_account.client_id, member_account.client_secret
    )

    assert_error(refused, 429, "too_many_attempts")


def test_an_unknown_client_id_is_throttled_like_a_known_one(
    address: TestClient, settings: Settings
) -> None:
    answers = [
        request_token(address, as_json, "cli_nobody", "guess").status_code
        for _ in range(settings.login_max_failures + 1)
    ]

    assert answers == [401] * settings.login_max_failures + [429]


def test_refused_attempts_neither_count_nor_extend_the_window(
    address: TestClient, runtime: Runtime, settings: Settings, member_account: Account
) -> None:
    fail(address, member_account, settings.login_max_failures)
    for _ in range(5):
        assert attempt(address, member_account, "wrong").status_code == 429

    with runtime.database.read() as session:
        row = session.get(LoginThrottle, client_key(member_account.client_id))

    assert row is not None
    assert row.failures == settings.login_max_failures


# The throttle service itself.


def throttle(
    runtime: Runtime, database: Database | None = None, **limits: int
) -> LoginThrottler:
    values = {
        "PALO_DATABASE_URL": runtime.settings.database_url,
        "PALO_SIGNING_KEYS": "t:" + "k" * 40,
        **{f"PALO_{name.upper()}": str(value) for name, value in limits.items()},
    }
    return LoginThrottler(database or runtime.database, Settings.from_env(values))


def test_a_refused_reservation_takes_no_place_on_the_other_key(
    runtime: Runtime,
) -> None:
    service = throttle(runtime, login_max_failures=1, login_max_failures_per_address=5)
    now = datetime.now(UTC)
    failed = service.reserve(client_id="cli_a", address="2001:db8::1", now=now)
    service.settle(failed, failed=True)

    with pytest.raises(TooManyAttempts):
        service.reserve(client_id="cli_a", address="2001:db8::1", now=now)

    with runtime.database.read() as session:
        row = session.get(LoginThrottle, address_key("2001:db8::1"))
    assert row is not None
    assert (row.failures, row.pending) == (1, 0)


def test_successes_free_their_places_and_failures_keep_them(runtime: Runtime) -> None:
    service = throttle(runtime, login_max_failures=2)
    now = datetime.now(UTC)

    for _ in range(5):
        reservation = service.reserve(client_id="cli_b", address="10.9.9.9", now=now)
        service.settle(reservation, failed=False)
    for _ in range(2):
        reservation = service.reserve(client_id="cli_b", address="10.9.9.9", now=now)
        service.settle(reservation, failed=True)

    with pytest.raises(TooManyAttempts):
        service.reserve(client_id="cli_b", address="10.9.9.9", now=now)


def test_attempts_being_checked_hold_the_places_left_until_they_settle(
    runtime: Runtime,
) -> None:
    service = throttle(runtime, login_max_failures=3)
    now = datetime.now(UTC)
    failed = service.reserve(client_id="cli_c", address="10.7.7.7", now=now)
    service.settle(failed, failed=True)
    checking = [
        service.reserve(client_id="cli_c", address="10.7.7.7", now=now)
        for _ in range(2)
    ]

    # Two failures left and two attempts being checked: a third must wait,
    # since both could still fail.
    with pytest.raises(AllPlacesPending):
        service.reserve(client_id="cli_c", address="10.7.7.7", now=now)
    service.settle(checking[0], failed=False)
    third = service.reserve(client_id="cli_c", address="10.7.7.7", now=now)
    service.settle(checking[1], failed=True)
    service.settle(third, failed=True)
    with pytest.raises(TooManyAttempts):
        service.reserve(client_id="cli_c", address="10.7.7.7", now=now)


def test_expired_windows_are_swept(runtime: Runtime) -> None:
    service = throttle(runtime, login_window_seconds=60)
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    service.reserve(client_id="cli_old", address="10.8.8.8", now=long_ago)
    service._last_sweep = float("-inf")

    service.reserve(client_id="cli_new", address="10.8.8.9", now=datetime.now(UTC))

    with runtime.database.read() as session:
        keys = set(session.scalars(sa.select(LoginThrottle.key)))
    assert client_key("cli_old") not in keys
    assert address_key("10.8.8.8") not in keys
    assert client_key("cli_new") in keys


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.10", "address:192.0.2.10"),
        ("2001:db8:1:2:aaaa::1", "address:2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "address:2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "address:2001:db8:1:3::/64"),
        ("::ffff:192.0.2.10", "address:192.0.2.10"),
        (None, "address:unknown"),
        ("testclient", "address:testclient"),
    ],
)
def test_address_keys_group_an_ipv6_host_and_unmap_ipv4(
    address: str | None, key: str
) -> None:
    assert address_key(address) == key


def test_client_keys_are_bounded_whatever_the_client_id() -> None:
    keys = {client_key(cid) for cid in ("a", "a" * 10_000, "\x00", "\udcff")}

    assert len(keys) == 4
    assert all(len(key) == len("client:") + 64 for key in keys)


def test_the_window_opens_with_the_first_failure_not_an_earlier_success(
    address: TestClient, runtime: Runtime, settings: Settings, member_account: Account
) -> None:
    assert attempt(address, member_account).status_code == 200
    age_windows(runtime, settings.login_window_seconds - 60)
    fail(address, member_account, settings.login_max_failures)

    refused = attempt(address, member_account)

    assert_error(refused, 429, "too_many_attempts")
    assert int(refused.headers["Retry-After"]) > settings.login_window_seconds - 30


def test_the_refusal_says_which_limit_was_reached(
    address: TestClient, settings: Settings, member_account: Account
) -> None:
    fail(address, member_account, settings.login_max_failures)

    body = assert_error(attempt(address, member_account), 429, "too_many_attempts")

    assert "for this client" in body["message"]
    assert "address" not in body["message"]


def test_places_never_settled_are_forgotten_once_no_check_could_still_hold_them(
    runtime: Runtime,
) -> None:
    """An attempt whose process died, or whose settle never reached the
    database, must not hold a client's logins for the rest of the window."""
    service = throttle(runtime, login_max_failures=3)
    start = datetime.now(UTC)
    for _ in range(3):
        service.reserve(client_id="cli_lost", address="10.6.6.6", now=start)

    soon = start + PENDING_EXPIRY - timedelta(seconds=1)
    with pytest.raises(AllPlacesPending):
        service.reserve(client_id="cli_lost", address="10.6.6.6", now=soon)

    later = start + PENDING_EXPIRY
    reservation = service.reserve(client_id="cli_lost", address="10.6.6.6", now=later)
    service.settle(reservation, failed=True)
    # The forgotten places freed the window; the failures it holds still count.
    for _ in range(2):
        failed = service.reserve(client_id="cli_lost", address="10.6.6.6", now=later)
        service.settle(failed, failed=True)
    with pytest.raises(TooManyAttempts):
        service.reserve(client_id="cli_lost", address="10.6.6.6", now=later)


def test_a_recent_place_keeps_older_ones_of_its_key_pending(runtime: Runtime) -> None:
    service = throttle(runtime, login_max_failures=2)
    start = datetime.now(UTC)
    service.reserve(client_id="cli_busy", address="10.6.6.7", now=start)
    recent = start + PENDING_EXPIRY - timedelta(seconds=5)
    service.reserve(client_id="cli_busy", address="10.6.6.7", now=recent)

    # The first place is old, but the latest is not: both may still settle.
    with pytest.raises(AllPlacesPending):
        service.reserve(
            client_id="cli_busy", address="10.6.6.7", now=start + PENDING_EXPIRY
        )


def test_a_place_is_given_back_when_its_connection_was_closed_meanwhile(
    runtime: Runtime, database_url: str
) -> None:
    """The database closed the pooled connection while the secret was checked;
    the settle finds it closed and must still give the place back."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    database = Database(database_url)
    try:
        service = throttle(runtime, database, login_max_failures=1)
        now = datetime.now(UTC)
        reservation = service.reserve(client_id="cli_cut", address="10.6.6.8", now=now)
        terminate_backend(database_url, backend_pid(database))

        service.settle(reservation, failed=False)

        with runtime.database.read() as session:
            pending = session.scalar(
                sa.select(LoginThrottle.pending).where(
                    LoginThrottle.key == client_key("cli_cut")
                )
            )
        assert pending == 0
        settled = service.reserve(client_id="cli_cut", address="10.6.6.8", now=now)
        service.settle(settled, failed=False)
    finally:
        database.dispose()
