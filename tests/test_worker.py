"""The delivery worker: fan-out, signatures, retries, leases, disabling."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook as StandardWebhook
from starlette.testclient import TestClient

from palo_api.db.models import OutboxEvent, Project, Webhook, WebhookDelivery
from palo_api.db.types import utcnow
from palo_api.runtime import Runtime
from palo_api.services import signing
from palo_api.worker import (
    FIRST_RETRY,
    LONGEST_RETRY,
    Worker,
    WorkerOptions,
    _backoff,
)
from tests.conftest import TEST_SIGNING_KEYS, Account, Factory
from tests.test_webhooks import URL, created

Handler = Callable[[httpx.Request], httpx.Response]


class Receiver:
    """A scripted receiver behind httpx's mock transport."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.answers: list[Handler] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.answers:
            return self.answers.pop(0)(request)
        return httpx.Response(204)

    def then(self, *answers: Handler) -> None:
        self.answers.extend(answers)


def status(code: int, headers: Any = None) -> Handler:
    return lambda _request: httpx.Response(code, headers=headers)


def timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("no answer", request=request)


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


def settle_earlier_tests(runtime: Runtime) -> None:
    """Leave nothing of earlier tests for the worker: the database is shared."""
    with runtime.database.write() as session:
        session.execute(
            sa.update(OutboxEvent)
            .where(OutboxEvent.dispatched_at.is_(None))
            .values(dispatched_at=utcnow())
        )
        session.execute(
            sa.update(WebhookDelivery)
            .where(WebhookDelivery.status == "pending")
            .values(status="failed", next_attempt_at=None)
        )
        session.commit()


@pytest.fixture
def worker(runtime: Runtime, receiver: Receiver) -> Worker:
    settle_earlier_tests(runtime)
    return Worker(
        runtime,
        WorkerOptions(concurrency=2),
        transport=httpx.MockTransport(receiver),
    )


def deliveries(runtime: Runtime, webhook_id: str) -> list[WebhookDelivery]:
    with runtime.database.read() as session:
        return list(
            session.scalars(
                sa.select(WebhookDelivery)
                .where(WebhookDelivery.webhook_id == uuid.UUID(webhook_id))
                .options(sa.orm.selectinload(WebhookDelivery.attempts))
                .order_by(WebhookDelivery.created_at)
            )
        )


def make_due(runtime: Runtime, webhook_id: str) -> None:
    """Bring every pending retry of a webhook forward to now."""
    with runtime.database.write() as session:
        session.execute(
            sa.update(WebhookDelivery)
            .where(
                WebhookDelivery.webhook_id == uuid.UUID(webhook_id),
                WebhookDelivery.status == "pending",
            )
            .values(next_attempt_at=utcnow())
        )
        session.commit()


def ping(client: TestClient, account: Account, hook: dict[str, Any]) -> None:
    response = client.post(f"/v1/webhooks/{hook['id']}/ping", headers=account.headers)
    assert response.status_code == 202, response.text


def point_at(runtime: Runtime, hook: dict[str, Any], url: str) -> None:
    """Change a webhook's URL behind the API's back (as DNS would)."""
    with runtime.database.write() as session:
        session.execute(
            sa.update(Webhook)
            .where(Webhook.id == uuid.UUID(hook["id"]))
            .values(url=url)
        )
        session.commit()


def age_pending(runtime: Runtime, hook: dict[str, Any], by: timedelta) -> None:
    """Make a webhook's pending deliveries ``by`` older."""
    with runtime.database.write() as session:
        session.execute(
            sa.update(WebhookDelivery)
            .where(
                WebhookDelivery.webhook_id == uuid.UUID(hook["id"]),
                WebhookDelivery.status == "pending",
            )
            .values(created_at=utcnow() - by)
        )
        session.commit()


def resolving_worker(runtime: Runtime, receiver: Receiver, address: str) -> Worker:
    return Worker(
        runtime,
        transport=httpx.MockTransport(receiver),
        resolve=lambda _host, _port: [address],
    )


@pytest.fixture
def project(client: TestClient, factory: Factory, admin_account: Account) -> str:
    project_id: str = factory.project(client, admin_account)["id"]
    return project_id


def test_each_event_goes_to_the_webhooks_that_subscribe_to_it(
    client: TestClient,
    factory: Factory,
    runtime: Runtime,
    worker: Worker,
    admin_account: Account,
    outsider: Account,
    project: str,
) -> None:
    other_project = factory.project(client, admin_account)["id"]
    org_wide = created(client, admin_account, events=["ticket.created"])
    scoped = created(
        client, admin_account, events=["ticket.created"], project_id=project
    )
    elsewhere = created(
        client, admin_account, events=["ticket.created"], project_id=other_project
    )
    other_type = created(client, admin_account, events=["ticket.resolved"])
    paused = created(client, admin_account, events=["ticket.created"])
    client.patch(
        f"/v1/webhooks/{paused['id']}",
        json={"active": False},
        headers=admin_account.headers,
    )
    foreign = created(client, outsider, events=["ticket.created"])
    worker.dispatch()

    ticket = factory.ticket(client, admin_account, project)
    worker.dispatch()

    def queued(hook: dict[str, Any]) -> list[str]:
        return [
            d.payload["data"]["id"]
            for d in deliveries(runtime, hook["id"])
            if d.event_type == "ticket.created"
        ]

    assert queued(org_wide) == [ticket["id"]]
    assert queued(scoped) == [ticket["id"]]
    for hook in (elsewhere, other_type, paused, foreign):
        assert queued(hook) == []


def test_a_delivery_is_signed_both_ways_and_recorded(
    client: TestClient,
    runtime: Runtime,
    worker: Worker,
    receiver: Receiver,
    factory: Factory,
    admin_account: Account,
    project: str,
) -> None:
    hook = created(client, admin_account, events=["ticket.created"])
    ticket = factory.ticket(client, admin_account, project, title="Café ☕ 😀")

    worker.run_once()

    (request,) = receiver.requests
    (delivery,) = deliveries(runtime, hook["id"])
    body = request.content
    envelope = json.loads(body)
    assert envelope["type"] == "ticket.created"
    assert envelope["data"]["title"] == "Café ☕ 😀"
    assert envelope["data"]["id"] == ticket["id"]
    assert set(envelope) == {"id", "type", "created_at", "data"}
    assert "😀".encode() in body  # sent as UTF-8, not as \\u escapes
    assert request.url == httpx.URL(URL)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-palo-event"] == "ticket.created"
    assert request.headers["x-palo-delivery"] == str(delivery.id)
    assert request.headers["webhook-id"] == envelope["id"] == str(delivery.event_id)
    timestamp, signature = request.headers["x-palo-signature"].split(",")
    assert timestamp == f"t={request.headers['webhook-timestamp']}"
    assert signature == "v1=" + signing.palo_signature(
        hook["secret"], int(timestamp[2:]), body
    )
    verified = StandardWebhook(hook["secret"]).verify(body, dict(request.headers))
    assert verified == envelope
    assert delivery.status == "succeeded"
    assert delivery.next_attempt_at is None
    (attempt,) = delivery.attempts
    assert attempt.status_code == 204
    assert attempt.error is None
    assert attempt.duration_ms >= 0


def test_a_receiver_failing_twice_gets_the_event_on_the_third_attempt(
    client: TestClient,
    runtime: Runtime,
    worker: Worker,
    receiver: Receiver,
    admin_account: Account,
) -> None:
    hook = created(client, admin_account)
    ping(client, admin_account, hook)
    receiver.then(status(500), timeout)

    worker.run_once()
    (first,) = deliveries(runtime, hook["id"])
    worker.run_once()  # not due yet: nothing is sent
    make_due(runtime, hook["id"])
    worker.run_once()
    make_due(runtime, hook["id"])
    worker.run_once()

    (delivery,) = deliveries(runtime, hook["id"])
    assert first.status == "pending"
    assert first.next_attempt_at is not None
    assert first.next_attempt_at > first.created_at + FIRST_RETRY / 2 - timedelta(
        seconds=1
    )
    assert len(receiver.requests) == 3
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    assert delivery.status == "succeeded"
    assert [a.status_code for a in delivery.attempts] == [500, None, 204]
    assert delivery.attempts[1].error == "no answer within 10 s"
    listed = client.get(
        f"/v1/webhooks/{hook['id']}/deliveries", headers=admin_account.headers
    ).json()["data"][0]
    assert [a["status_code"] for a in listed["attempts"]] == [500, None, 204]
    assert listed["status"] == "succeeded"


def test_a_410_disables_the_webhook_and_its_queue_waits(
    client: TestClient,
    runtime: Runtime,
    worker: Worker,
    receiver: Receiver,
    admin_account: Account,
) -> None:
    hook = created(client, admin_account)
    ping(client, admin_account, hook)
    receiver.then(status(410))

    worker.run_once()
    ping(client, admin_account, hook)
    worker.run_once()

    read = client.get(f"/v1/webhooks/{hook['id']}", headers=admin_account.headers)
    assert read.json()["active"] is False
    assert read.json()["disabled_reason"] == "The receiver answered 410 Gone."
    assert len(receiver.requests) == 1
    assert [d.status for d in deliveries(runtime, hook["id"])] == ["failed", "pending"]

    client.patch(
        f"/v1/webhooks/{hook['id']}",
        json={"active": True},
        headers=admin_account.headers,
    )
    worker.run_once()
    assert len(receiver.requests) == 2


def test_redirects_are_not_followed(
    client: TestClient,
    runtime: Runtime,
    worker: Worker,
    receiver: Receiver,
    admin_account: Account,
) -> None:
    hook = created(client, admin_account)
    ping(client, admin_account, hook)
    receiver.then(status(302, {"Location": "http://127.0.0.1/steal"}))

    worker.run_once()

    (delivery,) = deliveries(runtime, hook["id"])
    assert len(receiver.requests) == 1
    assert delivery.status == "pending"
    assert delivery.attempts[0].status_code == 302
    assert delivery.attempts[0].error == "redirects are not followed"


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_retry_after_is_honoured(
    client: TestClient,
    runtime: Runtime,
    worker: Worker,
    receiver: Receiver,
    admin_account: Account,
    form: str,
) -> None:
    hook = created(client, admin_account)
    ping(client, admin_account, hook)
    later = datetime.now(UTC) + timedelta(hours=2)
    value = "7200" if form == "seconds" else format_datetime(later, usegmt=True)
    receiver.then(status(503, {"Retry-After": value}))

    worker.run_once()

    (delivery,) = deliveries(runtime, hook["id"])
    assert delivery.next_attempt_at is not None
    wait = delivery.next_attempt_at - delivery.attempts[0].attempted_at
    assert (
        timedelta(hours=2) - timedelta(seconds=5)
        <= wait
        <= timedelta(hours=2, seconds=5)
    )


def test_backoff_doubles_with_jitter_up_to_its_ceiling() -> None:
    for attempts in range(1, 20):
        base = min(FIRST_RETRY * 2 ** (attempts - 1), LONGEST_RETRY)
        delays = [_backoff(attempts, None) for _ in range(50)]
        assert all(base / 2 <= d <= base for d in delays)
        assert len(set(delays)) > 1


def test_a_delivery_gives_up_after_three_days_and_disables_a_dead_webhook(
    client: TestClient,
    runtime: Runtime,
    worker: Worker,
    receiver: Receiver,
    admin_account: Account,
) -> None:
    hook = created(client, admin_account)
    ping(client, admin_account, hook)
    age_pending(runtime, hook, timedelta(days=3))
    receiver.then(status(500))

    worker.run_once()

    (delivery,) = deliveries(runtime, hook["id"])
    assert delivery.status == "failed"
    assert delivery.next_attempt_at is None
    read = client.get(f"/v1/webhooks/{hook['id']}", headers=admin_account.headers)
    assert read.json()["active"] is False
    assert "three days" in read.json()["disabled_reason"]


def test_a_webhook_that_succeeded_lately_stays_enabled_when_one_event_gives_up(
    client: TestClient,
    runtime: Runtime,
    worker: Worker,
    receiver: Receiver,
    admin_account: Account,
) -> None:
    hook = created(client, admin_account)
    ping(client, admin_account, hook)
    worker.run_once()  # succeeds
    ping(client, admin_account, hook)
    age_pending(runtime, hook, timedelta(days=3))
    receiver.then(status(500))

    worker.run_once()

    statuses = sorted(d.status for d in deliveries(runtime, hook["id"]))
    assert statuses == ["failed", "succeeded"]
    read = client.get(f"/v1/webhooks/{hook['id']}", headers=admin_account.headers)
    assert read.json()["active"] is True


def test_a_claimed_delivery_is_not_claimed_again_until_its_lease_ends(
    client: TestClient, runtime: Runtime, worker: Worker, admin_account: Account
) -> None:
    hook = created(client, admin_account)
    ping(client, admin_account, hook)
    other = Worker(runtime, WorkerOptions(lease=timedelta(seconds=60)))

    first = [c for c in worker.claim(100) if str(c.webhook_id) == hook["id"]]
    second = [c for c in other.claim(100) if str(c.webhook_id) == hook["id"]]
    with runtime.database.write() as session:
        session.execute(
            sa.update(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == uuid.UUID(hook["id"]))
            .values(locked_until=utcnow() - timedelta(seconds=1))
        )
        session.commit()
    third = [c for c in other.claim(100) if str(c.webhook_id) == hook["id"]]

    assert len(first) == 1
    assert second == []
    assert [c.delivery_id for c in third] == [first[0].delivery_id]
    # The first worker's lease is gone: its late result is not recorded.
    worker.record(first[0], worker.attempt(first[0]))
    (delivery,) = deliveries(runtime, hook["id"])
    assert delivery.attempts == []
    assert delivery.locked_until == third[0].lease


def test_during_a_rotation_deliveries_carry_both_signatures(
    client: TestClient, worker: Worker, receiver: Receiver, admin_account: Account
) -> None:
    hook = created(client, admin_account)
    rotated = client.post(
        f"/v1/webhooks/{hook['id']}/rotate-secret", headers=admin_account.headers
    ).json()
    ping(client, admin_account, hook)

    worker.run_once()

    (request,) = receiver.requests
    parts = request.headers["x-palo-signature"].split(",")
    t = int(parts[0].removeprefix("t="))
    assert parts[1:] == [
        "v1=" + signing.palo_signature(secret, t, request.content)
        for secret in (rotated["secret"], hook["secret"])
    ]
    for secret in (rotated["secret"], hook["secret"]):
        StandardWebhook(secret).verify(request.content, dict(request.headers))


def test_a_name_repointed_inside_after_creation_is_refused_at_delivery(
    client: TestClient, runtime: Runtime, receiver: Receiver, admin_account: Account
) -> None:
    hook = created(client, admin_account)
    point_at(runtime, hook, "https://hooks.example.test/palo")
    ping(client, admin_account, hook)
    rebinding = resolving_worker(runtime, receiver, "10.0.0.7")

    rebinding.run_once()

    (delivery,) = deliveries(runtime, hook["id"])
    assert receiver.requests == []
    assert delivery.attempts[0].status_code is None
    assert "10.0.0.7" in (delivery.attempts[0].error or "")


def test_delivery_connects_to_the_checked_address_and_names_the_host(
    client: TestClient, runtime: Runtime, receiver: Receiver, admin_account: Account
) -> None:
    hook = created(client, admin_account)
    point_at(runtime, hook, "https://hooks.example.test:8443/palo?x=1")
    ping(client, admin_account, hook)
    pinned = resolving_worker(runtime, receiver, "93.184.216.34")

    pinned.run_once()

    (request,) = receiver.requests
    assert str(request.url) == "https://93.184.216.34:8443/palo?x=1"
    assert request.headers["host"] == "hooks.example.test:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.test"


# The outbox.


def outbox_count(runtime: Runtime, org_id: uuid.UUID) -> int:
    with runtime.database.read() as session:
        return (
            session.scalar(
                sa.select(sa.func.count())
                .select_from(OutboxEvent)
                .where(OutboxEvent.org_id == org_id)
            )
            or 0
        )


def test_a_change_that_fails_emits_nothing(
    client: TestClient, runtime: Runtime, admin_account: Account, project: str
) -> None:
    before = outbox_count(runtime, admin_account.org_id)

    refused = client.post(
        "/v1/tickets",
        json={"project_id": project, "title": "x", "assignee_id": str(uuid.uuid4())},
        headers=admin_account.headers,
    )

    assert refused.status_code == 422
    assert outbox_count(runtime, admin_account.org_id) == before


def test_a_committed_change_emits_its_events_even_if_the_process_dies_at_once(
    runtime: Runtime,
    database_url: str,
    worker: Worker,
    receiver: Receiver,
    client: TestClient,
    admin_account: Account,
    project: str,
) -> None:
    hook = created(client, admin_account, events=["ticket.created"], project_id=project)
    worker.dispatch()
    script = textwrap.dedent(
        f"""
        import os, signal, uuid
        from palo_api.config import Settings
        from palo_api.runtime import Runtime
        from palo_api.services import auth, tickets

        settings = Settings.from_env({{
            "PALO_DATABASE_URL": {database_url!r},
            "PALO_SIGNING_KEYS": {TEST_SIGNING_KEYS!r},
        }})
        runtime = Runtime.from_settings(settings)
        with runtime.database.read() as session:
            principal = auth.load_principal(
                session=session,
                claims=runtime.tokens.verify({admin_account.token!r}),
            )
        with runtime.database.write() as session:
            tickets.create_ticket(
                session=session,
                principal=principal,
                ticket_in={{"project_id": {project!r}, "title": "Dies after"}},
                request_id=None,
            )
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )

    died = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ}, timeout=60, check=False
    )
    worker.run_once()

    assert died.returncode == -9
    (delivery,) = deliveries(runtime, hook["id"])
    assert delivery.payload["data"]["title"] == "Dies after"
    assert delivery.status == "succeeded"


@pytest.mark.parametrize(
    "value", ["²".encode(), b"1" * 5000, b"-5", b"soon", b"Wed, 99 Foo"]
)
def test_an_unreadable_retry_after_is_ignored_and_the_attempt_recorded(
    client: TestClient,
    runtime: Runtime,
    worker: Worker,
    receiver: Receiver,
    admin_account: Account,
    value: bytes,
) -> None:
    hook = created(client, admin_account)
    ping(client, admin_account, hook)
    receiver.then(status(503, [(b"Retry-After", value)]))

    worker.run_once()

    (delivery,) = deliveries(runtime, hook["id"])
    assert [a.status_code for a in delivery.attempts] == [503]
    assert delivery.locked_until is None
    if value == b"1" * 5000:
        # Read as "longer than we retry at all": the delivery gives up.
        assert delivery.status == "failed"
    else:
        assert delivery.status == "pending"
        assert delivery.next_attempt_at is not None
        wait = delivery.next_attempt_at - delivery.attempts[0].attempted_at
        assert wait <= FIRST_RETRY + timedelta(seconds=1)


def test_any_failure_of_an_attempt_is_recorded_never_left_unrecorded(
    client: TestClient,
    runtime: Runtime,
    worker: Worker,
    receiver: Receiver,
    admin_account: Account,
) -> None:
    hook = created(client, admin_account)
    ping(client, admin_account, hook)

    def broken(_request: httpx.Request) -> httpx.Response:
        raise RuntimeError("a bug in the transport")

    receiver.then(broken)

    worker.run_once()

    (delivery,) = deliveries(runtime, hook["id"])
    assert delivery.attempts[0].error == "unexpected error: RuntimeError"
    assert delivery.locked_until is None


def test_an_attempt_never_outlasts_its_deadline_whatever_the_receiver_does(
    client: TestClient,
    runtime: Runtime,
    admin_account: Account,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settle_earlier_tests(runtime)
    hook = created(client, admin_account)
    ping(client, admin_account, hook)
    monkeypatch.setattr("palo_api.worker.TIMEOUT_SECONDS", 0.5)

    class Dripping(httpx.AsyncBaseTransport):
        """Answers a byte at a time, each well within any per-read timeout."""

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            async def drip() -> Any:
                for _ in range(100):
                    await asyncio.sleep(0.1)
                    yield b"x"

            return httpx.Response(200, content=drip())

    class Stalling(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(30)
            return httpx.Response(200)

    started = time.monotonic()
    Worker(runtime, transport=Stalling()).run_once()
    stalled = time.monotonic() - started
    ping(client, admin_account, hook)
    make_due(runtime, hook["id"])
    started = time.monotonic()
    Worker(runtime, transport=Dripping()).run_once()
    dripped = time.monotonic() - started

    assert stalled < 5
    # The status came at once; the endless body is never read.
    assert dripped < 5
    results = [
        (a.status_code, a.error)
        for d in deliveries(runtime, hook["id"])
        for a in d.attempts
    ]
    assert (None, "no answer within 0.5 s") in results
    assert (200, None) in results


def test_housekeeping_purges_due_projects_and_forgets_old_logs(
    client: TestClient,
    runtime: Runtime,
    worker: Worker,
    admin_account: Account,
    project: str,
) -> None:
    hook = created(client, admin_account)
    ping(client, admin_account, hook)
    worker.run_once()  # one succeeded delivery
    ping(client, admin_account, hook)  # one pending
    client.delete(f"/v1/projects/{project}", headers=admin_account.headers)
    long_ago = utcnow() - timedelta(days=40)
    with runtime.database.write() as session:
        session.execute(
            sa.update(Project)
            .where(Project.id == uuid.UUID(project))
            .values(purge_after=utcnow() - timedelta(seconds=1))
        )
        session.execute(
            sa.update(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == uuid.UUID(hook["id"]))
            .values(created_at=long_ago)
        )
        session.execute(
            sa.update(OutboxEvent)
            .where(OutboxEvent.org_id == admin_account.org_id)
            .values(dispatched_at=long_ago)
        )
        session.commit()

    worker.housekeeping()

    gone = client.get(f"/v1/projects/{project}", headers=admin_account.headers)
    assert gone.status_code == 404
    with runtime.database.read() as session:
        assert session.get(Project, uuid.UUID(project)) is None
    # Finished deliveries are forgotten; one still pending is kept.
    assert [d.status for d in deliveries(runtime, hook["id"])] == ["pending"]
    assert outbox_count(runtime, admin_account.org_id) == 0
