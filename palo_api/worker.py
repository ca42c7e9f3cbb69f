"""``palo worker``: fans outbox events out to webhooks and delivers them.

The loop does three things, each in short transactions of its own:

1. **Dispatch.** Outbox events not dispatched yet are claimed (on PostgreSQL
   with ``FOR UPDATE SKIP LOCKED``, so several workers take different ones),
   and one delivery is queued per active webhook that subscribes to the
   event; the event is marked dispatched in the same transaction.
2. **Claim.** Due deliveries are leased: ``locked_until`` is set to now plus
   the lease in one committed transaction (again ``SKIP LOCKED``), so no
   other worker takes them until the lease ends. On SQLite every write
   transaction holds the database's single write lock, so claims are just
   as exclusive, one after the other.
3. **Deliver.** Each claimed delivery is POSTed from a thread pool, outside
   any transaction, and its attempt is recorded only if the lease is still
   ours. A worker that dies mid-attempt loses nothing: the lease ends and
   the delivery is attempted again.

SIGTERM (or SIGINT) stops claiming; attempts in flight finish and are
recorded, then the process exits. A thread runs the retention purge and
clears old outbox rows and delivery logs periodically.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import ssl
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import certifi
import httpx
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import and_, delete, exists, or_, select, update
from sqlalchemy.orm import Session

from palo_api.db.engine import skip_locked
from palo_api.db.models import DeliveryAttempt, OutboxEvent, Webhook, WebhookDelivery
from palo_api.db.types import rfc3339, utcnow
from palo_api.runtime import Runtime
from palo_api.services import retention, signing
from palo_api.services.targets import (
    Resolver,
    TargetRefused,
    check_url,
    system_resolver,
)

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10.0
# Retries: 30 s, 1 min, 2 min, ... doubling up to 12 h, each with jitter,
# until the delivery is three days old.
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=12)
GIVE_UP_AFTER = timedelta(days=3)
# A webhook without a successful delivery for this long is disabled.
DISABLE_AFTER = timedelta(days=3)
# Housekeeping: dispatched outbox rows and finished deliveries are kept this long.
OUTBOX_KEPT = timedelta(days=7)
DELIVERIES_KEPT = timedelta(days=30)
USER_AGENT = "PALO-Webhooks/1"

# What `palo worker --metrics-port` exposes; each worker process its own.
ATTEMPTS = Counter(
    "palo_webhook_delivery_attempts",
    "Delivery attempts this worker made, by outcome: succeeded, retrying, "
    "gave_up, gone (410, webhook disabled) or lease_lost.",
    ["outcome"],
)
ATTEMPT_DURATION = Histogram(
    "palo_webhook_delivery_attempt_duration_seconds",
    "Time a receiver took to answer one attempt, or to fail it.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
LAST_POLL = Gauge(
    "palo_worker_last_poll_timestamp_seconds",
    "When this worker last looked for due deliveries successfully (Unix "
    "time); alert when it falls behind the clock.",
)
for _outcome in ("succeeded", "retrying", "gave_up", "gone", "lease_lost"):
    ATTEMPTS.labels(_outcome)
DELIVERY_LAG = Histogram(
    "palo_webhook_delivery_lag_seconds",
    "Time from a delivery's creation (its event's dispatch, a poll interval "
    "at most after the commit) to its successful attempt.",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0, 86400.0),
)
RETRY_AFTER_SECONDS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class WorkerOptions:
    concurrency: int = 8
    poll_seconds: float = 1.0
    lease: timedelta = timedelta(seconds=60)
    dispatch_batch: int = 500
    housekeeping_seconds: float = 3600.0
    first_retry: timedelta = FIRST_RETRY


@dataclass(frozen=True)
class Claimed:
    """What one attempt needs, read when the delivery was leased."""

    delivery_id: uuid.UUID
    webhook_id: uuid.UUID
    url: str
    secrets: tuple[str, ...]
    event_id: uuid.UUID
    event_type: str
    payload: dict[str, Any]
    created_at: datetime
    attempt_count: int
    lease: datetime


@dataclass(frozen=True)
class Outcome:
    attempted_at: datetime
    status_code: int | None
    duration_ms: int
    error: str | None
    retry_after: timedelta | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Worker:
    def __init__(
        self,
        runtime: Runtime,
        options: WorkerOptions | None = None,
        *,
        resolve: Resolver = system_resolver,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.runtime = runtime
        self.database = runtime.database
        self.options = options or WorkerOptions()
        self.allow_private = runtime.settings.webhook_allow_private_targets
        self.resolve = resolve
        # Attempts use a client of their own, on an event loop of their own,
        # so that one deadline bounds the whole attempt (see _post). Loading
        # the CA bundle is the costly part of a client: it is done once.
        self.transport = transport
        self.tls = ssl.create_default_context(cafile=certifi.where())

    # The loop.

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set, then finish the attempts in flight."""
        housekeeping = threading.Thread(
            target=self._housekeeping_loop, args=(stop,), daemon=True
        )
        housekeeping.start()
        in_flight: set[Future[Outcome]] = set()
        with ThreadPoolExecutor(
            max_workers=self.options.concurrency, thread_name_prefix="deliver"
        ) as pool:
            while not stop.is_set():
                busy = self._dispatch_safely() > 0
                free = self.options.concurrency - len(in_flight)
                if free > 0:
                    for claimed in self._claim_safely(free):
                        in_flight.add(pool.submit(self.deliver, claimed))
                        busy = True
                if in_flight:
                    # With every slot taken, wait for one to free up rather
                    # than look for work that could not be started anyway.
                    full = len(in_flight) >= self.options.concurrency
                    done, in_flight = wait(
                        in_flight,
                        timeout=self.options.poll_seconds if full or not busy else 0,
                        return_when=FIRST_COMPLETED,
                    )
                    for future in done:
                        _log_failure(future)
                elif not busy:
                    stop.wait(self.options.poll_seconds)
            logger.info("stopping: %d attempts in flight finish first", len(in_flight))
            for future in in_flight:
                future.result()

    def run_once(self) -> int:
        """Dispatch, then deliver every due delivery once (tests, tools)."""
        self.dispatch()
        claimed = self.claim(1000)
        for delivery in claimed:
            self.deliver(delivery)
        return len(claimed)

    def _dispatch_safely(self) -> int:
        try:
            return self.dispatch()
        except Exception:
            logger.exception("dispatching outbox events failed; retrying")
            return 0

    def _claim_safely(self, limit: int) -> list[Claimed]:
        try:
            claimed = self.claim(limit)
        except Exception:
            logger.exception("claiming deliveries failed; retrying")
            return []
        LAST_POLL.set_to_current_time()
        return claimed

    # 1. Dispatch.

    def dispatch(self) -> int:
        """Queue deliveries for a batch of new outbox events; how many events."""
        with self.database.write() as session:
            query = (
                select(OutboxEvent)
                .where(OutboxEvent.dispatched_at.is_(None))
                .order_by(OutboxEvent.created_at, OutboxEvent.id)
                .limit(self.options.dispatch_batch)
            )
            events = list(session.scalars(skip_locked(session, query)))
            if not events:
                return 0
            now = utcnow()
            hooks = _subscribers(session, events)
            for event in events:
                envelope = {
                    "id": str(event.id),
                    "type": event.type,
                    "created_at": rfc3339(event.created_at),
                    "data": event.payload,
                }
                for hook in hooks.get(event.org_id, []):
                    if event.type in hook.events and (
                        hook.project_id is None or hook.project_id == event.project_id
                    ):
                        session.add(
                            WebhookDelivery(
                                id=uuid.uuid4(),
                                webhook_id=hook.id,
                                event_id=event.id,
                                event_type=event.type,
                                payload=envelope,
                                status="pending",
                                attempt_count=0,
                                next_attempt_at=now,
                                created_at=now,
                            )
                        )
                event.dispatched_at = now
            session.commit()
            return len(events)

    # 2. Claim.

    def claim(self, limit: int) -> list[Claimed]:
        """Lease up to ``limit`` due deliveries of active webhooks."""
        now = utcnow()
        lease = now + self.options.lease
        with self.database.write() as session:
            query = (
                select(WebhookDelivery, Webhook)
                .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                .where(
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.next_attempt_at <= now,
                    or_(
                        WebhookDelivery.locked_until.is_(None),
                        WebhookDelivery.locked_until <= now,
                    ),
                    Webhook.active.is_(True),
                )
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(limit)
            )
            rows = session.execute(
                skip_locked(session, query, of=WebhookDelivery)
            ).all()
            claimed = []
            for delivery, hook in rows:
                delivery.locked_until = lease
                claimed.append(
                    Claimed(
                        delivery_id=delivery.id,
                        webhook_id=hook.id,
                        url=hook.url,
                        secrets=_secrets_in_use(hook, now),
                        event_id=delivery.event_id,
                        event_type=delivery.event_type,
                        payload=delivery.payload,
                        created_at=delivery.created_at,
                        attempt_count=delivery.attempt_count,
                        lease=lease,
                    )
                )
            session.commit()
        return claimed

    # 3. Deliver.

    def deliver(self, claimed: Claimed) -> Outcome:
        """POST one delivery and record the attempt."""
        outcome = self.attempt(claimed)
        self.record(claimed, outcome)
        return outcome

    def attempt(self, claimed: Claimed) -> Outcome:
        """One signed POST, never raising: failures are outcomes too."""
        body = json.dumps(
            claimed.payload, ensure_ascii=False, separators=(",", ":")
        ).encode("utf-8")
        started = utcnow()
        clock = time.monotonic()
        headers = {
            "Content-Type": "application/json",
            **signing.signature_headers(
                secrets_in_use=claimed.secrets,
                event_id=str(claimed.event_id),
                event_type=claimed.event_type,
                delivery_id=str(claimed.delivery_id),
                timestamp=int(started.timestamp()),
                body=body,
            ),
        }
        try:
            url, extensions = self._pinned(claimed.url, headers)
            status_code, retry_after = asyncio.run(
                self._post(url, body, headers, extensions)
            )
        except TargetRefused as exc:
            return _failed(started, clock, f"target refused: {exc}")
        except (TimeoutError, httpx.TimeoutException):
            return _failed(started, clock, f"no answer within {TIMEOUT_SECONDS:g} s")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return _failed(started, clock, f"{type(exc).__name__}: {exc}"[:1000])
        except Exception as exc:
            # Whatever else goes wrong is this attempt's failure, recorded and
            # retried like any other, never a delivery stuck unrecorded.
            logger.exception("delivery %s: unexpected error", claimed.delivery_id)
            return _failed(started, clock, f"unexpected error: {type(exc).__name__}")
        error = None
        if 300 <= status_code < 400:
            error = "redirects are not followed"
        return Outcome(
            attempted_at=started,
            status_code=status_code,
            duration_ms=_elapsed_ms(clock),
            error=error,
            retry_after=_retry_after(retry_after, started),
        )

    async def _post(
        self, url: str, body: bytes, headers: dict[str, str], extensions: dict[str, Any]
    ) -> tuple[int, str | None]:
        """POST and return the status and Retry-After, all within the deadline.

        httpx's timeouts bound each wait, not the whole exchange: a receiver
        sending its answer a byte at a time would hold the attempt for as
        long as it likes. The response body is never read: only the status
        matters, and a receiver could send gigabytes.
        """
        async with (
            asyncio.timeout(TIMEOUT_SECONDS),
            httpx.AsyncClient(
                timeout=TIMEOUT_SECONDS,
                follow_redirects=False,
                verify=self.tls,
                transport=self.transport,
                headers={"User-Agent": USER_AGENT},
            ) as client,
            client.stream(
                "POST", url, content=body, headers=headers, extensions=extensions
            ) as response,
        ):
            return response.status_code, response.headers.get("retry-after")

    def _pinned(self, url: str, headers: dict[str, str]) -> tuple[str, dict[str, Any]]:
        """The URL to connect to: the checked address itself, not its name.

        Resolving once, checking the addresses, and connecting to one of
        them closes the window in which a name could be re-pointed inside
        (DNS rebinding). TLS still verifies the certificate for the name.
        """
        target = check_url(url, allow_private=self.allow_private, resolve=self.resolve)
        if not target.addresses:
            return url, {}
        parts = urlsplit(url)
        address = target.addresses[0]
        host = f"[{address}]" if ":" in address else address
        netloc = f"{host}:{parts.port}" if parts.port else host
        headers["Host"] = parts.netloc.rsplit("@", 1)[-1]
        pinned = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        return pinned, {"sni_hostname": target.host}

    def record(self, claimed: Claimed, outcome: Outcome) -> None:
        """Store the attempt and decide what comes next, if the lease is ours."""
        with self.database.write() as session:
            delivery = session.scalar(
                select(WebhookDelivery)
                .where(
                    WebhookDelivery.id == claimed.delivery_id,
                    WebhookDelivery.locked_until == claimed.lease,
                )
                .with_for_update()
            )
            if delivery is None:
                ATTEMPTS.labels("lease_lost").inc()
                logger.warning(
                    "delivery %s: lease lost before recording", claimed.delivery_id
                )
                return
            session.add(
                DeliveryAttempt(
                    id=uuid.uuid4(),
                    delivery_id=delivery.id,
                    attempted_at=outcome.attempted_at,
                    status_code=outcome.status_code,
                    duration_ms=outcome.duration_ms,
                    error=outcome.error,
                )
            )
            delivery.attempt_count += 1
            delivery.locked_until = None
            now = utcnow()
            if outcome.succeeded:
                delivery.status, delivery.next_attempt_at = "succeeded", None
                result = "succeeded"
            elif outcome.status_code == 410:
                delivery.status, delivery.next_attempt_at = "failed", None
                _disable(session, claimed.webhook_id, "The receiver answered 410 Gone.")
                result = "gone"
            else:
                retry_at = now + _backoff(
                    delivery.attempt_count,
                    outcome.retry_after,
                    first=self.options.first_retry,
                )
                if retry_at > delivery.created_at + GIVE_UP_AFTER:
                    delivery.status, delivery.next_attempt_at = "failed", None
                    result = "gave_up"
                    if not _succeeded_since(
                        session, claimed.webhook_id, now - DISABLE_AFTER
                    ):
                        _disable(
                            session,
                            claimed.webhook_id,
                            "No delivery succeeded for three days.",
                        )
                else:
                    delivery.next_attempt_at = retry_at
                    result = "retrying"
            session.commit()
        ATTEMPTS.labels(result).inc()
        ATTEMPT_DURATION.observe(outcome.duration_ms / 1000)
        if outcome.succeeded:
            DELIVERY_LAG.observe(max(0.0, (now - claimed.created_at).total_seconds()))
        logger.info(
            "delivery %s of %s to webhook %s: %s",
            claimed.delivery_id,
            claimed.event_type,
            claimed.webhook_id,
            outcome.status_code or outcome.error,
        )

    # Housekeeping.

    def _housekeeping_loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.options.housekeeping_seconds):
            try:
                self.housekeeping()
            except Exception:
                logger.exception("housekeeping failed; trying again later")

    def housekeeping(self) -> None:
        """Purge projects past retention; drop old outbox rows and delivery logs."""
        counts = retention.purge(database=self.database, as_of=datetime.now(UTC))
        now = utcnow()
        with self.database.write() as session:
            session.execute(
                delete(OutboxEvent).where(
                    OutboxEvent.dispatched_at.is_not(None),
                    OutboxEvent.dispatched_at < now - OUTBOX_KEPT,
                )
            )
            session.execute(
                delete(WebhookDelivery).where(
                    WebhookDelivery.status != "pending",
                    WebhookDelivery.created_at < now - DELIVERIES_KEPT,
                )
            )
            session.commit()
        logger.info("housekeeping done: purged %s", counts.as_dict())


def _subscribers(
    session: Session, events: list[OutboxEvent]
) -> dict[uuid.UUID, list[Webhook]]:
    org_ids = {event.org_id for event in events}
    hooks: dict[uuid.UUID, list[Webhook]] = {}
    for hook in session.scalars(
        select(Webhook).where(Webhook.org_id.in_(org_ids), Webhook.active.is_(True))
    ):
        hooks.setdefault(hook.org_id, []).append(hook)
    return hooks


def _secrets_in_use(hook: Webhook, now: datetime) -> tuple[str, ...]:
    if (
        hook.previous_secret
        and hook.previous_secret_expires_at
        and (hook.previous_secret_expires_at > now)
    ):
        return (hook.secret, hook.previous_secret)
    return (hook.secret,)


def _disable(session: Session, webhook_id: uuid.UUID, reason: str) -> None:
    session.execute(
        update(Webhook)
        .where(Webhook.id == webhook_id, Webhook.active.is_(True))
        .values(active=False, disabled_reason=reason, updated_at=utcnow())
    )
    logger.warning("webhook %s disabled: %s", webhook_id, reason)


def _succeeded_since(session: Session, webhook_id: uuid.UUID, since: datetime) -> bool:
    query = select(
        exists().where(
            and_(
                DeliveryAttempt.delivery_id == WebhookDelivery.id,
                WebhookDelivery.webhook_id == webhook_id,
                DeliveryAttempt.attempted_at >= since,
                DeliveryAttempt.status_code >= 200,
                DeliveryAttempt.status_code < 300,
            )
        )
    )
    return bool(session.scalar(query))


def _backoff(
    attempts: int, retry_after: timedelta | None, *, first: timedelta = FIRST_RETRY
) -> timedelta:
    """Exponential backoff with jitter, or the receiver's Retry-After if longer."""
    base = min(first * 2 ** min(attempts - 1, 30), LONGEST_RETRY)
    # "Equal jitter": between half and all of the base, so retries of many
    # deliveries spread out without ever coming back immediately.
    delay: timedelta = base / 2 + base / 2 * random.random()  # noqa: S311
    if retry_after is not None:
        delay = max(delay, min(retry_after, GIVE_UP_AFTER))
    return delay


def _retry_after(value: str | None, now: datetime) -> timedelta | None:
    """Retry-After as seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    longest = int(GIVE_UP_AFTER.total_seconds())
    if RETRY_AFTER_SECONDS.fullmatch(text):
        # Capped before int(): a receiver may send thousands of digits.
        seconds = int(text) if len(text) <= 9 else longest
        return timedelta(seconds=min(seconds, longest))
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(moment - now, timedelta(0))


def _failed(started: datetime, clock: float, error: str) -> Outcome:
    return Outcome(
        attempted_at=started,
        status_code=None,
        duration_ms=_elapsed_ms(clock),
        error=error,
    )


def _elapsed_ms(clock: float) -> int:
    return max(int((time.monotonic() - clock) * 1000), 0)


def _log_failure(future: Future[Any]) -> None:
    exc = future.exception()
    if exc is not None:
        logger.error("a delivery failed unexpectedly", exc_info=exc)
