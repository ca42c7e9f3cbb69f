"""Daily quotas per plan: counting, headers, refusals and plan changes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from palo_api.db.models import QuotaCounter
from palo_api.runtime import Runtime
from palo_api.services import admin
from tests.conftest import Account, Factory, assert_error

QUOTA_HEADERS = {
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "ratelimit-policy",
    "ratelimit",
}


def quota_headers(response: Any) -> set[str]:
    """The quota headers a response carries (httpx lists names in lower case)."""
    return QUOTA_HEADERS & {name.lower() for name in response.headers}


def next_midnight() -> int:
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    return int(
        datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=UTC).timestamp()
    )


def set_used(runtime: Runtime, org_id: uuid.UUID, used: int) -> None:
    """Pretend ``used`` requests were already counted today."""
    today = datetime.now(UTC).date()
    with runtime.database.write() as session:
        session.merge(QuotaCounter(org_id=org_id, day=today, count=used))
        session.commit()


def used_today(runtime: Runtime, org_id: uuid.UUID) -> int:
    today = datetime.now(UTC).date()
    with runtime.database.read() as session:
        count = session.scalar(
            sa.select(QuotaCounter.count).where(
                QuotaCounter.org_id == org_id, QuotaCounter.day == today
            )
        )
    return int(count or 0)


def set_plan(runtime: Runtime, org_id: uuid.UUID, plan: str) -> None:
    with runtime.database.write() as session:
        admin.set_plan(session=session, org_id=org_id, plan=plan)
        session.commit()


@pytest.fixture
def business(factory: Factory) -> Account:
    return factory.account(factory.org("business"), org_role="admin")


def test_business_responses_carry_the_quota_headers(
    client: TestClient, runtime: Runtime, business: Account
) -> None:
    first = client.get("/v1/projects", headers=business.headers)
    second = client.get("/v1/projects", headers=business.headers)

    assert first.status_code == second.status_code == 200
    assert quota_headers(first) == QUOTA_HEADERS
    assert first.headers["X-RateLimit-Limit"] == "1000"
    assert first.headers["X-RateLimit-Remaining"] == "999"
    assert second.headers["X-RateLimit-Remaining"] == "998"
    reset = int(second.headers["X-RateLimit-Reset"])
    assert reset == next_midnight()
    assert second.headers["RateLimit-Policy"] == '"daily";q=1000;w=86400'
    remaining, seconds = second.headers["RateLimit"].removeprefix('"daily";').split(";")
    assert remaining == "r=998"
    now = datetime.now(UTC).timestamp()
    assert abs(int(seconds.removeprefix("t=")) - (reset - now)) <= 2
    assert used_today(runtime, business.org_id) == 2


def test_every_authenticated_request_counts_whatever_its_status(
    client: TestClient, runtime: Runtime, business: Account
) -> None:
    missing = client.get(f"/v1/projects/{uuid.uuid4()}", headers=business.headers)
    bad_parameter = client.get("/v1/projects?limit=0", headers=business.headers)
    bad_body = client.post("/v1/projects", json={}, headers=business.headers)

    assert_error(missing, 404, "not_found")
    assert_error(bad_parameter, 400, "invalid_parameter")
    assert_error(bad_body, 422, "validation_failed")
    remaining = [
        r.headers["X-RateLimit-Remaining"] for r in (missing, bad_parameter, bad_body)
    ]
    assert remaining == ["999", "998", "997"]
    assert used_today(runtime, business.org_id) == 3


def test_unauthenticated_requests_and_the_token_endpoints_do_not_count(
    client: TestClient, runtime: Runtime, business: Account
) -> None:
    anonymous = client.get("/v1/projects")
    forged = client.get("/v1/projects", headers={"Authorization": "Bearer x.y.z"})
    token = client.post(
        "/v1/auth/token",
        json={"client_id": business.client_id, "client_secret": business.client_secret},
    )
    refreshed = client.post("/v1/auth/refresh", headers=business.headers)

    assert anonymous.status_code == forged.status_code == 401
    assert token.status_code == refreshed.status_code == 200
    for response in (anonymous, forged, token, refreshed):
        assert not quota_headers(response), response.headers
    assert used_today(runtime, business.org_id) == 0


def test_the_last_request_of_the_day_is_served_and_the_next_refused(
    client: TestClient, runtime: Runtime, business: Account
) -> None:
    set_used(runtime, business.org_id, 999)

    last = client.get("/v1/projects", headers=business.headers)
    refused = client.get("/v1/projects", headers=business.headers)

    assert last.status_code == 200
    assert last.headers["X-RateLimit-Remaining"] == "0"
    assert_error(refused, 429, "rate_limit_exceeded")
    assert "1000" in refused.json()["message"]
    assert refused.headers["X-RateLimit-Limit"] == "1000"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.headers["RateLimit"].startswith('"daily";r=0;t=')
    retry_after = int(refused.headers["Retry-After"])
    assert abs(retry_after - (next_midnight() - datetime.now(UTC).timestamp())) <= 2
    assert used_today(runtime, business.org_id) == 1000


def test_a_spent_quota_refuses_before_any_work(
    client: TestClient, runtime: Runtime, business: Account
) -> None:
    set_used(runtime, business.org_id, 1000)

    created = client.post("/v1/projects", json={"name": "x"}, headers=business.headers)
    invalid = client.post("/v1/projects", json={}, headers=business.headers)

    assert_error(created, 429, "rate_limit_exceeded")
    assert_error(invalid, 429, "rate_limit_exceeded")
    set_plan(runtime, business.org_id, "enterprise")
    listed = client.get("/v1/projects", headers=business.headers).json()
    assert listed["pagination"]["total"] == 0


def test_starter_plan_gets_a_token_but_no_api_access(
    client: TestClient, factory: Factory, runtime: Runtime
) -> None:
    starter = factory.account(factory.org("starter"), org_role="admin")

    token = client.post(
        "/v1/auth/token",
        json={"client_id": starter.client_id, "client_secret": starter.client_secret},
    )
    refused = client.get("/v1/projects", headers=starter.headers)

    assert token.status_code == 200
    body = assert_error(refused, 429, "plan_has_no_api_access")
    assert "Starter" in body["message"]
    assert refused.headers["X-RateLimit-Limit"] == "0"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.headers["RateLimit-Policy"] == '"daily";q=0;w=86400'
    # Waiting would not help: only a plan change does.
    assert "Retry-After" not in refused.headers
    assert used_today(runtime, starter.org_id) == 0


def test_enterprise_is_unlimited_and_sends_no_quota_headers(
    client: TestClient, runtime: Runtime, admin_account: Account
) -> None:
    response = client.get("/v1/projects", headers=admin_account.headers)

    assert response.status_code == 200
    assert not quota_headers(response)
    assert used_today(runtime, admin_account.org_id) == 0


def test_a_plan_change_takes_effect_on_the_next_request(
    client: TestClient, runtime: Runtime, business: Account
) -> None:
    set_used(runtime, business.org_id, 1000)
    statuses: list[tuple[str, Any]] = []

    for plan in ("business", "enterprise", "starter", "business"):
        set_plan(runtime, business.org_id, plan)
        response = client.get("/v1/projects", headers=business.headers)
        code = response.json().get("error") if response.status_code != 200 else None
        statuses.append((plan, (response.status_code, code)))

    assert statuses == [
        ("business", (429, "rate_limit_exceeded")),
        ("enterprise", (200, None)),
        ("starter", (429, "plan_has_no_api_access")),
        ("business", (429, "rate_limit_exceeded")),
    ]


def test_the_quota_resets_at_midnight_utc(runtime: Runtime, business: Account) -> None:
    from palo_api.services import quotas

    last_second = datetime(2031, 5, 6, 23, 59, 59, tzinfo=UTC)
    set_day = last_second.date()
    with runtime.database.write() as session:
        session.merge(QuotaCounter(org_id=business.org_id, day=set_day, count=1000))
        session.commit()

    with (
        runtime.database.write() as session,
        pytest.raises(quotas.QuotaExceeded) as refused,
    ):
        quotas.take(
            session=session, org_id=business.org_id, plan="business", now=last_second
        )
    with runtime.database.write() as session:
        state = quotas.take(
            session=session,
            org_id=business.org_id,
            plan="business",
            now=last_second + timedelta(seconds=1),
        )
        session.commit()

    assert refused.value.headers["Retry-After"] == "1"
    assert state is not None
    assert state.remaining == 999
    assert state.reset_at == int(datetime(2031, 5, 8, tzinfo=UTC).timestamp())
    assert state.headers()["RateLimit"] == '"daily";r=999;t=86400'
