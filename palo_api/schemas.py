"""Marshmallow shapes of every response body; field names follow the document."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar, overload

from marshmallow import Schema, fields

from palo_api.db.models import AuditEvent, Comment, Project, ProjectMember, Ticket
from palo_api.db.types import rfc3339

T = TypeVar("T")


class Timestamp(fields.Field[datetime]):
    """RFC 3339 in UTC with a ``Z`` suffix and second precision or better."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return rfc3339(value)


class Shape(Generic[T]):
    """A response shape written as one plain function of the object.

    Marshmallow walks its field objects for every attribute of every object,
    which costs more than the database for a page of tickets or a ticket's
    history; the shapes lists and details send are written out instead, with
    the same keys and the same rendering of ids and times.
    """

    def __init__(self, render: Callable[[T], dict[str, Any]]) -> None:
        self._render = render

    @overload
    def dump(self, obj: T, *, many: Literal[False] = False) -> dict[str, Any]: ...

    @overload
    def dump(
        self, obj: Iterable[T], *, many: Literal[True]
    ) -> list[dict[str, Any]]: ...

    def dump(self, obj: Any, *, many: bool = False) -> Any:
        """The body of ``obj`` (a list of bodies with ``many``)."""
        if many:
            return [self._render(item) for item in obj]
        return self._render(obj)


def _id(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def _time(value: datetime | None) -> str | None:
    return None if value is None else rfc3339(value)


def _member(member: ProjectMember) -> dict[str, Any]:
    return {
        "project_id": str(member.project_id),
        "user_id": str(member.user_id),
        "email": member.user.email,
        "name": member.user.name,
        "role": member.role,
        "added_at": rfc3339(member.added_at),
    }


def _member_row(row: Any) -> dict[str, Any]:
    return {
        "project_id": str(row.project_id),
        "user_id": str(row.user_id),
        "email": row.email,
        "name": row.name,
        "role": row.role,
        "added_at": rfc3339(row.added_at),
    }


def _project(
    project: Project, members: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    if members is None:
        members = [_member(member) for member in project.members]
    return {
        "id": str(project.id),
        "name": project.name,
        "description": project.description,
        "template": project.template,
        "status": project.status,
        "settings": dict(project.settings),
        "members": members,
        "created_by": str(project.created_by),
        "created_at": rfc3339(project.created_at),
        "updated_at": rfc3339(project.updated_at),
        "archived_at": _time(project.archived_at),
        "purge_after": _time(project.purge_after),
    }


def _ticket(ticket: Ticket) -> dict[str, Any]:
    return {
        "id": str(ticket.id),
        "project_id": str(ticket.project_id),
        "title": ticket.title,
        "description": ticket.description,
        "status": ticket.status,
        "priority": ticket.priority,
        "assignee_id": _id(ticket.assignee_id),
        "reporter_id": str(ticket.reporter_id),
        "created_at": rfc3339(ticket.created_at),
        "updated_at": rfc3339(ticket.updated_at),
        "resolved_at": _time(ticket.resolved_at),
    }


def _comment(comment: Comment) -> dict[str, Any]:
    return {
        "id": str(comment.id),
        "ticket_id": str(comment.ticket_id),
        "author_id": str(comment.author_id),
        "body": comment.body,
        "body_html": comment.body_html,
        "mentions": [str(mention) for mention in comment.mentions],
        "created_at": rfc3339(comment.created_at),
    }


def _audit_event(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": str(event.id),
        "ticket_id": str(event.ticket_id),
        "actor_id": str(event.actor_id),
        "action": event.action,
        "comment_id": _id(event.comment_id),
        "changes": event.changes,
        "request_id": _id(event.request_id),
        "created_at": rfc3339(event.created_at),
    }


class TokenOut(Schema):
    access_token = fields.String()
    expires_in = fields.Integer()
    token_type = fields.Constant("Bearer")


class OrganizationOut(Schema):
    id = fields.UUID()
    name = fields.String()
    plan = fields.String()


class UserOut(Schema):
    id = fields.UUID()
    org_id = fields.UUID()
    email = fields.String()
    name = fields.String()
    org_role = fields.String()


class ClientOut(Schema):
    client_id = fields.String()
    name = fields.String(allow_none=True)
    user_id = fields.UUID()
    org_id = fields.UUID(attribute="user.org_id")
    disabled_at = Timestamp(allow_none=True)
    created_at = Timestamp()


project_out = Shape[Project](_project)
project_member_out = Shape(_member)
ticket_out = Shape(_ticket)
comment_out = Shape(_comment)
audit_event_out = Shape(_audit_event)


def dump_project(
    project: Any, ticket_counts: dict[str, int], members: Iterable[Any] | None = None
) -> dict[str, Any]:
    """A project's response body; its ticket counts come from a separate query.

    ``members`` are rows of (project_id, user_id, email, name, role, added_at)
    when the project's own ``members`` were not loaded (lists).
    """
    if members is None:
        body = project_out.dump(project)
    else:
        body = _project(project, [_member_row(row) for row in members])
    body["ticket_counts"] = ticket_counts
    return body


def dump_page(
    items: list[dict[str, Any]], *, total: int, limit: int, offset: int
) -> dict[str, Any]:
    """The specification's list envelope."""
    return {
        "data": items,
        "pagination": {
            "total": total,
            "limit": limit,
            "offset": offset,
            "has_more": offset + len(items) < total,
        },
    }


token_out = TokenOut()
organization_out = OrganizationOut()
user_out = UserOut()
client_out = ClientOut()


class WebhookOut(Schema):
    id = fields.UUID()
    url = fields.String()
    events = fields.List(fields.String())
    project_id = fields.UUID(allow_none=True)
    description = fields.String(allow_none=True)
    active = fields.Boolean()
    disabled_reason = fields.String(allow_none=True)
    created_at = Timestamp()
    updated_at = Timestamp()


class WebhookWithSecretOut(WebhookOut):
    secret = fields.String()


class DeliveryAttemptOut(Schema):
    attempted_at = Timestamp()
    status_code = fields.Integer(allow_none=True)
    duration_ms = fields.Integer()
    error = fields.String(allow_none=True)


class WebhookDeliveryOut(Schema):
    id = fields.UUID()
    webhook_id = fields.UUID()
    event_id = fields.UUID()
    event_type = fields.String()
    status = fields.String()
    attempts = fields.List(fields.Nested(DeliveryAttemptOut))
    created_at = Timestamp()
    next_attempt_at = Timestamp(allow_none=True)


webhook_out = WebhookOut()
webhook_with_secret_out = WebhookWithSecretOut()
webhook_delivery_out = WebhookDeliveryOut()
