"""Ticket operations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from palo_api.context import current_request_id
from palo_api.handlers import Reply, caller, runtime
from palo_api.schemas import audit_event_out, comment_out, dump_page, ticket_out
from palo_api.services import tickets


def list_tickets(
    limit: int,
    offset: int,
    project_id: str | None = None,
    status: str | None = None,
    priority: str | None = None,
    assignee_id: str | None = None,
    created_after: str | None = None,
    created_before: str | None = None,
) -> Reply:
    filters = tickets.TicketFilters(
        project_id=_uuid(project_id),
        status=status,
        priority=priority,
        assignee_id=_uuid(assignee_id),
        created_after=_instant(created_after),
        created_before=_instant(created_before),
    )
    # One statement gives the page and its total together: it needs no
    # transaction around it.
    with runtime().database.lookup() as session:
        page = tickets.list_tickets(
            session=session,
            principal=caller(),
            filters=filters,
            limit=limit,
            offset=offset,
        )
        items = [ticket_out.dump(ticket) for ticket in page.tickets]
    return dump_page(items, total=page.total, limit=limit, offset=offset), 200


def create_ticket(body: dict[str, Any]) -> Reply:
    with runtime().database.write() as session:
        ticket = tickets.create_ticket(
            session=session,
            principal=caller(),
            ticket_in=body,
            request_id=current_request_id(),
        )
        result = ticket_out.dump(ticket)
    return result, 201, {"Location": f"/v1/tickets/{ticket.id}"}


def get_ticket(ticket_id: str) -> Reply:
    with runtime().database.read() as session:
        detail = tickets.get_ticket_detail(
            session=session, principal=caller(), ticket_id=uuid.UUID(ticket_id)
        )
        result = ticket_out.dump(detail.ticket)
        result["comments"] = comment_out.dump(detail.comments, many=True)
        result["history"] = audit_event_out.dump(detail.history, many=True)
    return result, 200


def update_ticket(ticket_id: str, body: dict[str, Any]) -> Reply:
    with runtime().database.write() as session:
        ticket = tickets.update_ticket(
            session=session,
            principal=caller(),
            ticket_id=uuid.UUID(ticket_id),
            ticket_in=body,
            request_id=current_request_id(),
        )
        return ticket_out.dump(ticket), 200


def _uuid(value: str | None) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(value)


def _instant(value: str | None) -> datetime | None:
    """An RFC 3339 time (already validated) in UTC.

    An offset that carries it past year 1 or 9999 in UTC would overflow; such
    a bound excludes or includes every ticket alike, so it is clamped.
    """
    if value is None:
        return None
    parsed = datetime.fromisoformat(value.upper())
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        edge = datetime.min if parsed.year == 1 else datetime.max
        return edge.replace(tzinfo=UTC)
