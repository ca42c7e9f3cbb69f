"""Comment operations."""

from __future__ import annotations

import uuid
from typing import Any

from palo_api.context import current_request_id
from palo_api.handlers import Reply, caller, runtime
from palo_api.schemas import comment_out
from palo_api.services import comments


def create_ticket_comment(ticket_id: str, body: dict[str, Any]) -> Reply:
    principal, ticket = caller(), uuid.UUID(ticket_id)
    with runtime().database.read() as session:
        comments.check_can_comment(
            session=session, principal=principal, ticket_id=ticket
        )

    draft = comments.prepare_comment(body)
    with runtime().database.write() as session:
        comment = comments.create_comment(
            session=session,
            principal=principal,
            ticket_id=ticket,
            draft=draft,
            request_id=current_request_id(),
        )
        return comment_out.dump(comment), 201
