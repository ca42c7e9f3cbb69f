"""Daily request quotas per organization, counted in the database.

The count lives in ``quota_counters``, one row per organization and UTC day,
so every worker of every host sharing the database draws on the same quota.
Each counted request takes one unit with a single conditional upsert: the row
only grows while it is under the plan's limit, so exactly the quota is
served, however many requests arrive at once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Insert
from sqlalchemy.orm import Session

from palo_api.db.engine import upsert_insert
from palo_api.db.models import QuotaCounter
from palo_api.errors import TooManyRequests

# Requests per UTC day; None is unlimited. A plan missing here is a bug.
DAILY_LIMITS: dict[str, int | None] = {
    "starter": 0,
    "business": 1000,
    "enterprise": None,
}
DAY_SECONDS = 86_400


@dataclass(frozen=True)
class QuotaState:
    """What the rate-limit headers of one counted response say."""

    limit: int
    remaining: int
    reset_at: int
    now: int

    @property
    def seconds_to_reset(self) -> int:
        return max(self.reset_at - self.now, 0)

    def headers(self) -> dict[str, str]:
        """The headers DESIGN.md puts on every counted response."""
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
            "RateLimit-Policy": f'"daily";q={self.limit};w={DAY_SECONDS}',
            "RateLimit": f'"daily";r={self.remaining};t={self.seconds_to_reset}',
        }


class PlanHasNoApiAccess(TooManyRequests):
    code = "plan_has_no_api_access"
    default_message = (
        "The Starter plan includes no API access; a Business or Enterprise plan does."
    )


class QuotaExceeded(TooManyRequests):
    code = "rate_limit_exceeded"


def daily_limit(plan: str) -> int | None:
    """The plan's requests per UTC day, or None when it has no limit."""
    return DAILY_LIMITS[plan]


def take(
    *, session: Session, org_id: uuid.UUID, plan: str, now: datetime
) -> QuotaState | None:
    """Count one request of ``org_id`` today, or raise once the quota is spent.

    Returns None for a plan without a limit: nothing is counted and no
    header is sent. The caller commits.
    """
    limit = daily_limit(plan)
    if limit is None:
        return None
    day = now.astimezone(UTC).date()
    if limit == 0:
        state = _state(limit=0, used=0, day=day, now=now)
        raise PlanHasNoApiAccess(headers=state.headers())

    used = session.scalar(_increment_below(session, org_id, day, limit))
    if used is None:
        state = _state(limit=limit, used=limit, day=day, now=now)
        raise QuotaExceeded(
            f"The daily quota of {limit} requests is spent; it resets at midnight UTC.",
            headers={**state.headers(), "Retry-After": str(state.seconds_to_reset)},
        )
    return _state(limit=limit, used=used, day=day, now=now)


def _increment_below(
    session: Session, org_id: uuid.UUID, day: date, limit: int
) -> Insert:
    """INSERT count=1, or add one while under ``limit``; RETURNING the count.

    No row comes back when the day's count has already reached the limit.
    """
    table = QuotaCounter.__table__.c
    insert = upsert_insert(session)
    statement = insert(QuotaCounter).values(org_id=org_id, day=day, count=1)
    return statement.on_conflict_do_update(
        index_elements=[table.org_id, table.day],
        set_={"count": table.count + 1},
        where=table.count < limit,
    ).returning(table.count)


def _state(*, limit: int, used: int, day: date, now: datetime) -> QuotaState:
    midnight = datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)
    return QuotaState(
        limit=limit,
        remaining=max(limit - used, 0),
        reset_at=int(midnight.timestamp()),
        now=int(now.timestamp()),
    )
