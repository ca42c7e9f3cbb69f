"""The transactional outbox: events are rows written with the change itself."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from palo_api.db.models import OutboxEvent


def record_event(
    *,
    session: Session,
    org_id: uuid.UUID,
    project_id: uuid.UUID | None,
    event_type: str,
    data: dict[str, Any],
) -> OutboxEvent:
    """Add an event to the caller's transaction; it exists only if that commits."""
    event = OutboxEvent(
        org_id=org_id, project_id=project_id, type=event_type, payload=data
    )
    session.add(event)
    return event
