"""Retention: delete for good the archived projects whose purge date has passed."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import CursorResult, delete, exists, func, select
from sqlalchemy.orm import Session

from palo_api.db.engine import Database
from palo_api.db.models import (
    AuditEvent,
    Comment,
    Project,
    ProjectMember,
    Ticket,
    Webhook,
)
from palo_api.db.types import utcnow

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500
# Ticket ids travel as bound parameters; SQLite allows 32,766 per statement.
MAX_BATCH_SIZE = 10_000
# How long a purge waits, without progress, for due projects others hold.
DEFAULT_WAIT_SECONDS = 30.0
LOCKED_RETRY_SECONDS = 0.2


@dataclass(frozen=True)
class PurgeCounts:
    """Rows deleted for good, by kind."""

    projects: int = 0
    tickets: int = 0
    comments: int = 0
    audit_events: int = 0
    members: int = 0
    webhooks: int = 0
    # Projects still due when the purge gave up waiting for their row lock.
    still_due: int = 0

    def __add__(self, other: PurgeCounts) -> PurgeCounts:
        return PurgeCounts(
            **{
                f.name: getattr(self, f.name) + getattr(other, f.name)
                for f in fields(self)
            }
        )

    def as_dict(self) -> dict[str, int]:
        """The rows deleted by kind, in the order the CLI prints them."""
        counts = asdict(self)
        del counts["still_due"]
        return counts


class _Batch(NamedTuple):
    project_id: uuid.UUID
    counts: PurgeCounts
    project_gone: bool
    seconds_locked: float


def purge(
    *,
    database: Database,
    as_of: datetime,
    batch_size: int = DEFAULT_BATCH_SIZE,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
) -> PurgeCounts:
    """Delete for good every project due by ``as_of``; what this call deleted.

    Each batch is its own short write transaction. Several purges may run at
    once: they share the work, and their counts add up to what existed. On
    PostgreSQL a project another transaction holds locked is skipped while
    others are due, then waited for, up to ``wait_seconds`` without progress;
    any still due after that are counted in ``still_due``, never dropped
    silently.
    """
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}")

    total = PurgeCounts()
    by_project: dict[uuid.UUID, PurgeCounts] = {}
    deadline = time.monotonic() + wait_seconds
    while True:
        batch = _purge_batch(database=database, as_of=as_of, batch_size=batch_size)
        if batch is None:
            # Nothing due is free: either nothing is due, or another purge or
            # a user's transaction holds what is (the lock lasts one request).
            still_due = _count_due(database, as_of)
            if still_due == 0 or time.monotonic() >= deadline:
                return replace(total, still_due=still_due)
            time.sleep(LOCKED_RETRY_SECONDS)
            continue
        deadline = time.monotonic() + wait_seconds

        total += batch.counts
        done = by_project.pop(batch.project_id, PurgeCounts()) + batch.counts
        if batch.project_gone:
            _log_purged(batch.project_id, done)
        else:
            by_project[batch.project_id] = done

        if database.is_sqlite:
            # SQLite has one write lock for the whole file, and the other
            # processes' writers poll for it with growing sleeps: a purge that
            # took it back at once would starve them into "database is
            # locked". Leaving it free as long as we held it gives them turns.
            time.sleep(batch.seconds_locked)


def _purge_batch(
    *, database: Database, as_of: datetime, batch_size: int
) -> _Batch | None:
    """Lock one due project and delete a batch of it; None when nothing is due."""
    with database.write() as session:
        # FOR UPDATE (not NO KEY UPDATE) also blocks the foreign-key checks of
        # rows being added under the project, so nothing appears uncounted.
        # A project another purge (or a user) holds is skipped, not waited
        # for; PostgreSQL re-evaluates the WHERE clause on the newest version
        # of the row it locks, so the project is still due. On SQLite the
        # write lock taken at BEGIN serialises all of this.
        project = session.scalar(
            select(Project)
            .where(Project.purge_after <= as_of)
            .order_by(Project.purge_after, Project.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if project is None:
            return None
        locked_at = time.monotonic()  # the select above waited for SQLite's lock

        now = utcnow()
        if project.purge_after is not None and project.purge_after > now:
            # ``as_of`` is in the future and users may still restore this
            # project. From this commit on the API hides it and refuses to
            # restore it, so it cannot come back half-purged. The batch deletes
            # nothing: a restore already waiting for the row with an earlier
            # clock reading may still win, and must find the project whole;
            # the next batch re-checks that it is still due.
            logger.info(
                "project %s hidden ahead of its purge (purge_after was %s)",
                project.id,
                project.purge_after.isoformat(),
            )
            project.purge_after = now
            session.commit()
            return _Batch(
                project.id, PurgeCounts(), False, time.monotonic() - locked_at
            )

        counts = _delete_tickets(session, project.id, batch_size)
        gone = counts.tickets < batch_size and not _has_tickets(session, project.id)
        if gone:
            counts += _delete_project(session, project.id)
        session.commit()
        return _Batch(project.id, counts, gone, time.monotonic() - locked_at)


def _count_due(database: Database, as_of: datetime) -> int:
    with database.read() as session:
        due = select(func.count()).where(Project.purge_after <= as_of)
        return session.scalar(due) or 0


def _delete_tickets(
    session: Session, project_id: uuid.UUID, batch_size: int
) -> PurgeCounts:
    """Delete up to ``batch_size`` tickets of a project with their history."""
    # Locked so that no comment or audit event can be added to them between
    # counting and deleting; the cascade would take it along uncounted.
    ticket_ids = list(
        session.scalars(
            select(Ticket.id)
            .where(Ticket.project_id == project_id)
            .limit(batch_size)
            .with_for_update()
        )
    )
    if not ticket_ids:
        return PurgeCounts()

    comments = _count(session, Comment, Comment.ticket_id.in_(ticket_ids))
    audit_events = _count(session, AuditEvent, AuditEvent.ticket_id.in_(ticket_ids))
    # Comments and history go by ON DELETE CASCADE: the append-only trigger
    # lets history go only once its ticket is gone.
    tickets = _rowcount(session, delete(Ticket).where(Ticket.id.in_(ticket_ids)))
    return PurgeCounts(tickets=tickets, comments=comments, audit_events=audit_events)


def _delete_project(session: Session, project_id: uuid.UUID) -> PurgeCounts:
    """Delete a project without tickets; members and webhooks go by cascade."""
    members = _count(session, ProjectMember, ProjectMember.project_id == project_id)
    webhooks = _count(session, Webhook, Webhook.project_id == project_id)
    projects = _rowcount(session, delete(Project).where(Project.id == project_id))
    return PurgeCounts(projects=projects, members=members, webhooks=webhooks)


def _has_tickets(session: Session, project_id: uuid.UUID) -> bool:
    return bool(session.scalar(select(exists().where(Ticket.project_id == project_id))))


def _count(session: Session, model: type[Any], condition: Any) -> int:
    return session.scalar(select(func.count()).select_from(model).where(condition)) or 0


def _rowcount(session: Session, statement: Any) -> int:
    result = session.execute(
        statement, execution_options={"synchronize_session": False}
    )
    return cast(CursorResult[Any], result).rowcount


def _log_purged(project_id: uuid.UUID, counts: PurgeCounts) -> None:
    # Another purge running at the same time may have deleted part of it.
    logger.info(
        "project %s purged; this run deleted %s tickets, %s comments, "
        "%s audit events, %s members, %s webhooks",
        project_id,
        counts.tickets,
        counts.comments,
        counts.audit_events,
        counts.members,
        counts.webhooks,
    )
