"""Marshmallow shapes of every response body; field names follow the document."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from marshmallow import Schema, fields

from palo_api.db.types import rfc3339


class Timestamp(fields.Field[datetime]):
    """RFC 3339 in UTC with a ``Z`` suffix and second precision or better."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return rfc3339(value)


class ProjectMemberOut(Schema):
    project_id = fields.UUID()
    user_id = fields.UUID()
    email = fields.String(attribute="user.email")
    name = fields.String(attribute="user.name")
    role = fields.String()
    added_at = Timestamp()


class ProjectOut(Schema):
    id = fields.UUID()
    name = fields.String()
    description = fields.String(allow_none=True)
    template = fields.String()
    status = fields.String()
    settings = fields.Dict()
    members = fields.List(fields.Nested(ProjectMemberOut))
    created_by = fields.UUID()
    created_at = Timestamp()
    updated_at = Timestamp()
    archived_at = Timestamp(allow_none=True)
    purge_after = Timestamp(allow_none=True)


class TicketOut(Schema):
    id = fields.UUID()
    project_id = fields.UUID()
    title = fields.String()
    description = fields.String(allow_none=True)
    status = fields.String()
    priority = fields.String()
    assignee_id = fields.UUID(allow_none=True)
    reporter_id = fields.UUID()
    created_at = Timestamp()
    updated_at = Timestamp()
    resolved_at = Timestamp(allow_none=True)


class CommentOut(Schema):
    id = fields.UUID()
    ticket_id = fields.UUID()
    author_id = fields.UUID()
    body = fields.String()
    body_html = fields.String()
    mentions = fields.List(fields.String())
    created_at = Timestamp()


class AuditEventOut(Schema):
    id = fields.UUID()
    ticket_id = fields.UUID()
    actor_id = fields.UUID()
    action = fields.String()
    comment_id = fields.UUID(allow_none=True)
    changes = fields.Raw()
    request_id = fields.UUID(allow_none=True)
    created_at = Timestamp()


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


project_out = ProjectOut()
project_member_out = ProjectMemberOut()
ticket_out = TicketOut()
comment_out = CommentOut()
audit_event_out = AuditEventOut()


def dump_project(project: Any, ticket_counts: dict[str, int]) -> dict[str, Any]:
    """A project's response body; its ticket counts come from a separate query."""
    body: dict[str, Any] = project_out.dump(project)
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
