"""Tickets: creation, filtered lists, updates, and the history of every change."""

from __future__ import annotations

import functools
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    Select,
    bindparam,
    func,
    inspect,
    select,
)
from sqlalchemy.orm import Session

from palo_api.db.models import AuditEvent, Comment, Project, Ticket
from palo_api.db.types import utcnow
from palo_api.errors import Forbidden, NotFound, ValidationFailed
from palo_api.schemas import ticket_out
from palo_api.services import projects
from palo_api.services.auth import Principal
from palo_api.services.events import record_event

logger = logging.getLogger(__name__)

# The fields a client sets, in the order history lists their changes.
TICKET_FIELDS = ("title", "description", "status", "priority", "assignee_id")
WRITER_ROLES = ("admin", "member")


@dataclass(frozen=True)
class TicketFilters:
    """The list filters; each one given narrows the list (they combine with AND)."""

    project_id: uuid.UUID | None = None
    status: str | None = None
    priority: str | None = None
    assignee_id: uuid.UUID | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True)
class TicketPage:
    # Rows with a ticket's columns as attributes, which is all a body reads.
    tickets: list[Any]
    total: int


@dataclass(frozen=True)
class TicketDetail:
    ticket: Ticket
    comments: list[Comment]
    history: list[AuditEvent]


def list_tickets(
    *,
    session: Session,
    principal: Principal,
    filters: TicketFilters,
    limit: int,
    offset: int,
) -> TicketPage:
    """The tickets the caller can see that match ``filters``, newest first.

    Without ``project_id``, tickets of archived projects are left out, as
    archived projects are from the project list; naming an archived project
    lists its tickets, which stay readable until the project is purged.
    """
    # Every ticket carries its project's organization, so the organization
    # and the projects the caller may see within it are the whole of
    # visibility.
    params: dict[str, Any] = {
        "org_id": principal.org_id,
        "limit": limit,
        "offset": offset,
    }
    org_admin = False
    if filters.project_id is not None:
        # A named project may be archived (still readable). Whether the caller
        # sees it rides in the count and the page as a condition PostgreSQL
        # checks once, before reading any ticket.
        scope = "project"
        org_admin = principal.is_org_admin
        params.update(
            user_id=principal.user_id, now=utcnow(), project_id=filters.project_id
        )
    elif principal.is_org_admin:
        # An org admin sees every active project of the organization: the
        # ones it does not (archived, being purged) are the shorter list,
        # and usually an empty one.
        hidden = session.scalars(projects.hidden_project_ids(principal)).all()
        scope = "except" if hidden else "organization"
        params["hidden_project_ids"] = list(hidden)
    else:
        scope = "among"
        params["visible_project_ids"] = list(
            session.scalars(projects.visible_project_ids(principal, active_only=True))
        )
    given = {
        name: value
        for name, value in (
            ("status", filters.status),
            ("priority", filters.priority),
            ("assignee_id", filters.assignee_id),
            ("created_after", filters.created_after),
            ("created_before", filters.created_before),
        )
        if value is not None
    }
    params.update(given)
    count, page = _list_statements(scope, org_admin, tuple(given))
    # The page carries its total, counted by the same statement: both come
    # from one snapshot, in one round trip. Only a page past the end needs
    # the count alone.
    rows = list(session.execute(page, params))
    if rows:
        total = rows[0].palo_total
    elif offset:
        total = session.scalar(count, params) or 0
    else:
        total = 0
    return TicketPage(tickets=rows, total=total)


# A list reads tickets as rows of every column, not as ORM objects: building
# those cost more than the rest of the request's Python.
_TICKET_COLUMNS = tuple(attr.class_attribute for attr in inspect(Ticket).column_attrs)


@functools.lru_cache(maxsize=64)
def _list_statements(
    scope: str, org_admin: bool, filters: tuple[str, ...]
) -> tuple[Select[int], Select[Any]]:
    """The count and the page (each row with the count) of a list, with its
    values as bound parameters.

    They are built once for each combination of scope and filters, and kept:
    building and hashing a statement on every request was a fifth of the
    list's Python. The ids of projects to include or leave out are rendered
    into the SQL as values: behind a subquery PostgreSQL cannot tell a member
    of the biggest project from a member of small ones (a deep page took
    1.7 s at a million tickets, 9 ms with values); as bound parameters, a
    prepared statement's generic plan would lose them again.
    """
    org_id: BindParameter[uuid.UUID] = bindparam("org_id")
    conditions: list[ColumnElement[bool]] = [Ticket.org_id == org_id]
    if scope == "project":
        project_id: BindParameter[uuid.UUID] = bindparam("project_id")
        visible = projects.visible_project_ids_for(
            org_id=org_id,
            user_id=bindparam("user_id"),
            org_admin=org_admin,
            now=bindparam("now"),
            active_only=False,
        )
        conditions.append(visible.where(Project.id == project_id).exists())
        conditions.append(Ticket.project_id == project_id)
    elif scope == "except":
        conditions.append(Ticket.project_id.not_in(_values("hidden")))
    elif scope == "among":
        conditions.append(Ticket.project_id.in_(_values("visible")))
    for name in filters:
        value: BindParameter[Any] = bindparam(name)
        if name == "created_after":
            conditions.append(Ticket.created_at >= value)
        elif name == "created_before":
            conditions.append(Ticket.created_at < value)
        else:
            conditions.append(getattr(Ticket, name) == value)
    count = select(func.count()).select_from(Ticket).where(*conditions)
    page = (
        select(*_TICKET_COLUMNS, count.scalar_subquery().label("palo_total"))
        .where(*conditions)
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
    )
    return count, page


def get_ticket(
    *,
    session: Session,
    principal: Principal,
    ticket_id: uuid.UUID,
    for_update: bool = False,
) -> Ticket:
    """A ticket of a project the caller can see, or NotFound."""
    visible = projects.visible_project_ids(principal, active_only=False)
    query = select(Ticket).where(
        Ticket.id == ticket_id,
        Ticket.org_id == principal.org_id,
        Ticket.project_id.in_(visible),
    )
    if for_update:
        query = query.with_for_update(of=Ticket)
    ticket = session.scalar(query)
    if ticket is None:
        raise NotFound(f"Ticket {ticket_id} does not exist.")
    return ticket


def get_ticket_detail(
    *, session: Session, principal: Principal, ticket_id: uuid.UUID
) -> TicketDetail:
    """A ticket with its comments and its history, both oldest first."""
    ticket = get_ticket(session=session, principal=principal, ticket_id=ticket_id)
    comments = session.scalars(
        select(Comment)
        .where(Comment.ticket_id == ticket.id)
        .order_by(Comment.created_at, Comment.id)
    )
    history = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.ticket_id == ticket.id)
        .order_by(AuditEvent.created_at, AuditEvent.id)
    )
    return TicketDetail(ticket=ticket, comments=list(comments), history=list(history))


def create_ticket(
    *,
    session: Session,
    principal: Principal,
    ticket_in: dict[str, Any],
    request_id: uuid.UUID | None,
) -> Ticket:
    """Create a ticket in an active project, with its first history event."""
    project = _writable_project(session, principal, ticket_in["project_id"])
    assignee_id = _uuid_or_none(ticket_in.get("assignee_id"))
    _check_assignee(project, assignee_id)

    now = utcnow()
    ticket = Ticket(
        id=uuid.uuid4(),
        org_id=principal.org_id,
        project_id=project.id,
        title=ticket_in["title"].strip(),
        description=ticket_in.get("description"),
        status="open",
        priority=ticket_in.get("priority", "p3"),
        assignee_id=assignee_id,
        reporter_id=principal.user_id,
        created_at=now,
        updated_at=now,
    )
    session.add(ticket)
    # The history row refers to the ticket, and without a relationship between
    # them the unit of work does not know to insert the ticket first.
    session.flush()
    changes = [
        _change(field, None, getattr(ticket, field))
        for field in TICKET_FIELDS
        if getattr(ticket, field) is not None
    ]
    _record(session, ticket, principal, "ticket.created", changes, request_id, now)
    _emit(session, ticket, "ticket.created")
    session.commit()
    logger.info("ticket %s created by %s", ticket.id, principal.user_id)
    return ticket


def update_ticket(
    *,
    session: Session,
    principal: Principal,
    ticket_id: uuid.UUID,
    ticket_in: dict[str, Any],
    request_id: uuid.UUID | None,
) -> Ticket:
    """Apply a partial update; only effective changes are recorded and emitted."""
    ticket = get_ticket(
        session=session, principal=principal, ticket_id=ticket_id, for_update=True
    )
    project = _writable_project(session, principal, ticket.project_id, found=True)

    wanted = {field: ticket_in[field] for field in TICKET_FIELDS if field in ticket_in}
    if "title" in wanted:
        wanted["title"] = wanted["title"].strip()
    if "assignee_id" in wanted:
        wanted["assignee_id"] = _uuid_or_none(wanted["assignee_id"])
    changes = [
        _change(field, getattr(ticket, field), value)
        for field, value in wanted.items()
        if getattr(ticket, field) != value
    ]
    if not changes:
        return ticket
    if "assignee_id" in {change["field"] for change in changes}:
        _check_assignee(project, wanted["assignee_id"])

    now = utcnow()
    became_resolved = ticket.status != "resolved" and wanted.get("status") == "resolved"
    for change in changes:
        setattr(ticket, change["field"], wanted[change["field"]])
    ticket.updated_at = now
    if became_resolved:
        ticket.resolved_at = now

    _record(session, ticket, principal, "ticket.updated", changes, request_id, now)
    _emit(session, ticket, "ticket.updated")
    if became_resolved:
        _emit(session, ticket, "ticket.resolved")
    session.commit()
    return ticket


def writable_project_of(
    *, session: Session, principal: Principal, ticket: Ticket, lock: bool = True
) -> Project:
    """The ticket's project, locked against archiving, if the caller may write."""
    return _writable_project(
        session, principal, ticket.project_id, found=True, lock=lock
    )


def record_history(
    *,
    session: Session,
    ticket: Ticket,
    principal: Principal,
    action: str,
    request_id: uuid.UUID | None,
    at: datetime,
    comment_id: uuid.UUID | None = None,
) -> AuditEvent:
    """Add a history event without field changes (a comment, say)."""
    return _record(session, ticket, principal, action, [], request_id, at, comment_id)


def _values(name: str) -> BindParameter[list[uuid.UUID]]:
    """A list of project ids rendered into the statement as literal values."""
    return bindparam(f"{name}_project_ids", expanding=True, literal_execute=True)


def _writable_project(
    session: Session,
    principal: Principal,
    project_id: uuid.UUID | str,
    *,
    found: bool = False,
    lock: bool = True,
) -> Project:
    """The project, share-locked so it cannot be archived under this write.

    ``found`` says the caller already reached the project through one of its
    tickets; otherwise a project the caller cannot see is a field error of
    the body, worded the same whether or not it exists.
    """
    try:
        project = projects.get_project(
            session=session,
            principal=principal,
            project_id=uuid.UUID(str(project_id)),
            for_share=lock,
        )
    except NotFound:
        if found:
            raise
        raise ValidationFailed(
            details=[
                {"field": "project_id", "message": "no project you can see has this id"}
            ]
        ) from None

    if projects.role_in(project, principal) not in WRITER_ROLES:
        raise Forbidden(
            "Viewers of this project cannot create, change or comment on its tickets."
        )
    if project.status != "active":
        raise ValidationFailed(
            "The project is archived; its tickets are read-only until it is restored.",
            code="project_archived",
        )
    return project


def _check_assignee(project: Project, assignee_id: uuid.UUID | None) -> None:
    if assignee_id is None:
        return
    if all(member.user_id != assignee_id for member in project.members):
        raise ValidationFailed(
            details=[
                {"field": "assignee_id", "message": "must be a member of the project"}
            ]
        )


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(str(value))


def _change(field: str, before: Any, after: Any) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        return str(value) if isinstance(value, uuid.UUID) else value

    return {"field": field, "from": plain(before), "to": plain(after)}


def _record(
    session: Session,
    ticket: Ticket,
    principal: Principal,
    action: str,
    changes: list[dict[str, Any]],
    request_id: uuid.UUID | None,
    at: datetime,
    comment_id: uuid.UUID | None = None,
) -> AuditEvent:
    event = AuditEvent(
        id=uuid.uuid4(),
        org_id=ticket.org_id,
        ticket_id=ticket.id,
        actor_id=principal.user_id,
        action=action,
        comment_id=comment_id,
        changes=changes,
        request_id=request_id,
        created_at=at,
    )
    session.add(event)
    return event


def _emit(session: Session, ticket: Ticket, event_type: str) -> None:
    record_event(
        session=session,
        org_id=ticket.org_id,
        project_id=ticket.project_id,
        event_type=event_type,
        data=ticket_out.dump(ticket),
    )
