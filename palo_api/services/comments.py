"""Comments on tickets: Markdown rendered once, on write, with their mentions."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from palo_api.db.models import Comment, User
from palo_api.db.types import utcnow
from palo_api.errors import ValidationFailed
from palo_api.markdown import render_markdown
from palo_api.services import tickets
from palo_api.services.auth import Principal

logger = logging.getLogger(__name__)

MAX_BODY_HTML_CHARS = 100_000


@dataclass(frozen=True)
class CommentDraft:
    """A comment rendered before any transaction opens, so no lock waits on it."""

    body: str
    body_html: str
    mentioned: list[uuid.UUID]


def check_can_comment(
    *, session: Session, principal: Principal, ticket_id: uuid.UUID
) -> None:
    """Refuse early (404, 403, 422) whoever could not comment on this ticket.

    Rendering costs up to a second of CPU for a hostile body: it happens only
    for callers who pass this check, and ``create_comment`` checks again.
    """
    ticket = tickets.get_ticket(
        session=session, principal=principal, ticket_id=ticket_id
    )
    tickets.writable_project_of(
        session=session, principal=principal, ticket=ticket, lock=False
    )


def prepare_comment(comment_in: dict[str, Any]) -> CommentDraft:
    """Render a comment's Markdown and find the ids it mentions."""
    body = comment_in["body"]
    rendered = render_markdown(body)
    if len(rendered.html) > MAX_BODY_HTML_CHARS:
        # Markdown can multiply its size (a reference link used a thousand
        # times): a cap on the output keeps every stored comment small.
        raise ValidationFailed(
            details=[
                {
                    "field": "body",
                    "message": f"renders to more than {MAX_BODY_HTML_CHARS} "
                    "characters of HTML",
                }
            ]
        )
    return CommentDraft(
        body=body, body_html=rendered.html, mentioned=rendered.mentioned
    )


def create_comment(
    *,
    session: Session,
    principal: Principal,
    ticket_id: uuid.UUID,
    draft: CommentDraft,
    request_id: uuid.UUID | None,
) -> Comment:
    """Add a comment to a ticket of an active project and record it in history."""
    ticket = tickets.get_ticket(
        session=session, principal=principal, ticket_id=ticket_id
    )
    tickets.writable_project_of(session=session, principal=principal, ticket=ticket)

    now = utcnow()
    comment = Comment(
        id=uuid.uuid4(),
        ticket_id=ticket.id,
        author_id=principal.user_id,
        body=draft.body,
        body_html=draft.body_html,
        mentions=[str(user_id) for user_id in _org_users(session, principal, draft)],
        created_at=now,
    )
    session.add(comment)
    tickets.record_history(
        session=session,
        ticket=ticket,
        principal=principal,
        action="comment.created",
        request_id=request_id,
        at=now,
        comment_id=comment.id,
    )
    session.commit()
    logger.info("comment %s added to ticket %s", comment.id, ticket.id)
    return comment


def _org_users(
    session: Session, principal: Principal, draft: CommentDraft
) -> list[uuid.UUID]:
    """The mentioned ids that are users of the caller's organization, in order."""
    if not draft.mentioned:
        return []
    known = set(
        session.scalars(
            select(User.id).where(
                User.org_id == principal.org_id, User.id.in_(draft.mentioned)
            )
        )
    )
    return [user_id for user_id in draft.mentioned if user_id in known]
