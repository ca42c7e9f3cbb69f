"""What operators watch: readiness of the database and the webhook backlog."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from palo_api.db import migrate
from palo_api.db.models import OutboxEvent, WebhookDelivery


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str | None = None


@dataclass(frozen=True)
class Backlog:
    pending_events: int
    outbox_lag_seconds: float
    due_deliveries: int
    overdue_seconds: float


def readiness(session: Session) -> Readiness:
    """Whether this process can serve: the database answers and has every
    migration this release knows.

    Errors reaching the database propagate; the caller reports them.
    """
    session.execute(text("SELECT 1"))
    # A database migrated by a newer release is fine: migrations only add,
    # and during a rolling upgrade the hosts not yet restarted must go on.
    if migrate.schema_state(session.connection()) == "behind":
        return Readiness(
            False,
            "The database lacks migrations this release needs; run "
            "`palo db upgrade` with this release.",
        )
    return Readiness(True)


def webhook_backlog(session: Session, *, now: datetime) -> Backlog:
    """How far event dispatch and delivery lag behind, read in two queries."""
    pending, oldest = session.execute(
        select(func.count(), func.min(OutboxEvent.created_at)).where(
            OutboxEvent.dispatched_at.is_(None)
        )
    ).one()
    due, earliest = session.execute(
        select(func.count(), func.min(WebhookDelivery.next_attempt_at)).where(
            WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at <= now,
        )
    ).one()
    return Backlog(
        pending_events=pending,
        outbox_lag_seconds=_seconds_since(oldest, now),
        due_deliveries=due,
        overdue_seconds=_seconds_since(earliest, now),
    )


def _seconds_since(moment: datetime | None, now: datetime) -> float:
    if moment is None:
        return 0.0
    return max(0.0, (now - moment).total_seconds())
