"""Webhook subscriptions and their delivery log.

A webhook belongs to an organization, and optionally to one of its projects.
Only those who manage it see it: an org admin sees every webhook of the
organization, a project admin those of the project. Anyone else gets 404,
whether the webhook exists or not; the URL itself may be a credential (many
receivers put their token in it). Creating one for a project the caller can
see but does not administer is 403.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from palo_api.db.models import (
    Project,
    ProjectMember,
    Webhook,
    WebhookDelivery,
)
from palo_api.db.types import rfc3339, utcnow
from palo_api.errors import Forbidden, NotFound, ValidationFailed
from palo_api.services import projects, signing
from palo_api.services.auth import Principal
from palo_api.services.targets import (
    Resolver,
    TargetRefused,
    check_url,
    system_resolver,
)

logger = logging.getLogger(__name__)

EVENT_TYPES = (
    "ticket.created",
    "ticket.updated",
    "ticket.resolved",
    "project.created",
    "member.invited",
)
# After a rotation, deliveries are signed with the old secret as well for
# this long, so that receivers can switch without refusing any.
ROTATION_OVERLAP = timedelta(hours=24)


@dataclass(frozen=True)
class WebhookPage:
    webhooks: list[Webhook]
    total: int


@dataclass(frozen=True)
class DeliveryPage:
    deliveries: list[WebhookDelivery]
    total: int


@dataclass(frozen=True)
class TargetPolicy:
    """How webhook URLs are checked: the operator setting and the resolver."""

    allow_private: bool
    resolve: Resolver = system_resolver

    def check(self, url: str) -> None:
        try:
            check_url(url, allow_private=self.allow_private, resolve=self.resolve)
        except TargetRefused as exc:
            raise ValidationFailed(
                details=[{"field": "url", "message": str(exc)}]
            ) from exc


def list_webhooks(
    *,
    session: Session,
    principal: Principal,
    project_id: uuid.UUID | None,
    limit: int,
    offset: int,
) -> WebhookPage:
    """The webhooks the caller manages, newest first."""
    query = _managed(principal)
    if project_id is not None:
        query = query.where(Webhook.project_id == project_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    webhooks = list(
        session.scalars(
            query.order_by(Webhook.created_at.desc(), Webhook.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )
    return WebhookPage(webhooks=webhooks, total=total)


def authorize_create(
    *, session: Session, principal: Principal, webhook_in: dict[str, Any]
) -> uuid.UUID | None:
    """Check the caller may subscribe to the scope named; the project id."""
    raw_project = webhook_in.get("project_id")
    project_id = uuid.UUID(raw_project) if raw_project else None
    if project_id is None:
        if not principal.is_org_admin:
            raise Forbidden(
                "Only an organization admin may subscribe to the whole "
                "organization's events; name a project you administer."
            )
    else:
        _require_project_admin(session, principal, project_id)
    return project_id


def create_webhook(
    *, session: Session, principal: Principal, webhook_in: dict[str, Any]
) -> Webhook:
    """Subscribe a URL; the answer is the only time its secret is shown.

    The URL must have passed TargetPolicy.check first, outside any
    transaction: resolving a name can take seconds.
    """
    project_id = authorize_create(
        session=session, principal=principal, webhook_in=webhook_in
    )
    now = utcnow()
    webhook = Webhook(
        id=uuid.uuid4(),
        org_id=principal.org_id,
        project_id=project_id,
        url=webhook_in["url"],
        events=_ordered(webhook_in["events"]),
        description=webhook_in.get("description"),
        secret=signing.new_secret(),
        active=True,
        created_by=principal.user_id,
        created_at=now,
        updated_at=now,
    )
    session.add(webhook)
    session.commit()
    logger.info("webhook %s created by %s", webhook.id, principal.user_id)
    return webhook


def get_webhook(
    *, session: Session, principal: Principal, webhook_id: uuid.UUID, lock: bool = False
) -> Webhook:
    """A webhook the caller manages, or NotFound."""
    query = _managed(principal).where(Webhook.id == webhook_id)
    if lock:
        query = query.with_for_update(of=Webhook)
    webhook = session.scalar(query)
    if webhook is None:
        raise NotFound(f"Webhook {webhook_id} does not exist.")
    return webhook


def update_webhook(
    *,
    session: Session,
    principal: Principal,
    webhook_id: uuid.UUID,
    webhook_in: dict[str, Any],
) -> Webhook:
    """Change a webhook; ``active: true`` re-enables one PALO disabled.

    A new URL must have passed TargetPolicy.check first, as for creation.
    """
    webhook = get_webhook(
        session=session, principal=principal, webhook_id=webhook_id, lock=True
    )
    changed = False
    if "url" in webhook_in and webhook_in["url"] != webhook.url:
        webhook.url = webhook_in["url"]
        changed = True
    if "events" in webhook_in and _ordered(webhook_in["events"]) != webhook.events:
        webhook.events = _ordered(webhook_in["events"])
        changed = True
    if "description" in webhook_in and webhook_in["description"] != webhook.description:
        webhook.description = webhook_in["description"]
        changed = True
    if "active" in webhook_in and webhook_in["active"] != webhook.active:
        webhook.active = webhook_in["active"]
        if webhook.active:
            webhook.disabled_reason = None
        changed = True
    if changed:
        webhook.updated_at = utcnow()
    session.commit()
    return webhook


def delete_webhook(
    *, session: Session, principal: Principal, webhook_id: uuid.UUID
) -> None:
    """Delete a webhook for good, with its delivery log."""
    webhook = get_webhook(
        session=session, principal=principal, webhook_id=webhook_id, lock=True
    )
    session.delete(webhook)
    session.commit()
    logger.info("webhook %s deleted by %s", webhook_id, principal.user_id)


def rotate_secret(
    *, session: Session, principal: Principal, webhook_id: uuid.UUID
) -> Webhook:
    """A new secret; the previous one keeps signing for ROTATION_OVERLAP."""
    webhook = get_webhook(
        session=session, principal=principal, webhook_id=webhook_id, lock=True
    )
    now = utcnow()
    webhook.previous_secret = webhook.secret
    webhook.previous_secret_expires_at = now + ROTATION_OVERLAP
    webhook.secret = signing.new_secret()
    webhook.updated_at = now
    session.commit()
    logger.info("webhook %s secret rotated by %s", webhook_id, principal.user_id)
    return webhook


def ping(
    *, session: Session, principal: Principal, webhook_id: uuid.UUID
) -> WebhookDelivery:
    """Queue a signed ``ping`` delivery."""
    webhook = get_webhook(session=session, principal=principal, webhook_id=webhook_id)
    now = utcnow()
    event_id = uuid.uuid4()
    envelope = {
        "id": str(event_id),
        "type": "ping",
        "created_at": rfc3339(now),
        "data": {"webhook_id": str(webhook.id)},
    }
    delivery = _queue(session, webhook.id, event_id, "ping", envelope, now)
    session.commit()
    return delivery


def list_deliveries(
    *,
    session: Session,
    principal: Principal,
    webhook_id: uuid.UUID,
    limit: int,
    offset: int,
) -> DeliveryPage:
    """A webhook's deliveries, newest first, each with its attempts."""
    get_webhook(session=session, principal=principal, webhook_id=webhook_id)
    query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    deliveries = list(
        session.scalars(
            query.options(selectinload(WebhookDelivery.attempts))
            .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )
    return DeliveryPage(deliveries=deliveries, total=total)


def redeliver(
    *,
    session: Session,
    principal: Principal,
    webhook_id: uuid.UUID,
    delivery_id: uuid.UUID,
) -> WebhookDelivery:
    """Queue the same event again, with the same event id."""
    get_webhook(session=session, principal=principal, webhook_id=webhook_id)
    original = session.scalar(
        select(WebhookDelivery).where(
            WebhookDelivery.id == delivery_id, WebhookDelivery.webhook_id == webhook_id
        )
    )
    if original is None:
        raise NotFound(f"Delivery {delivery_id} does not exist.")
    delivery = _queue(
        session,
        webhook_id,
        original.event_id,
        original.event_type,
        original.payload,
        utcnow(),
    )
    session.commit()
    return delivery


def _queue(
    session: Session,
    webhook_id: uuid.UUID,
    event_id: uuid.UUID,
    event_type: str,
    envelope: dict[str, Any],
    now: datetime,
) -> WebhookDelivery:
    delivery = WebhookDelivery(
        id=uuid.uuid4(),
        webhook_id=webhook_id,
        event_id=event_id,
        event_type=event_type,
        payload=envelope,
        status="pending",
        attempt_count=0,
        next_attempt_at=now,
        created_at=now,
    )
    delivery.attempts = []
    session.add(delivery)
    session.flush()
    return delivery


def _managed(principal: Principal) -> Select[Webhook]:
    """The caller's organization's webhooks that the caller manages."""
    query = select(Webhook).where(Webhook.org_id == principal.org_id)
    if principal.is_org_admin:
        return query
    administered = select(ProjectMember.project_id).where(
        ProjectMember.user_id == principal.user_id, ProjectMember.role == "admin"
    )
    return query.where(Webhook.project_id.in_(administered))


def _require_project_admin(
    session: Session, principal: Principal, project_id: uuid.UUID
) -> Project:
    try:
        project = projects.get_project(
            session=session, principal=principal, project_id=project_id
        )
    except NotFound:
        # Named in the body: a field at fault, worded the same whether the
        # project exists elsewhere or not at all.
        raise ValidationFailed(
            details=[
                {
                    "field": "project_id",
                    "message": f"project {project_id} does not exist",
                }
            ]
        ) from None
    if projects.role_in(project, principal) != "admin":
        raise Forbidden("Only a project admin may manage this project's webhooks.")
    if project.status != "active":
        raise ValidationFailed(
            "The project is archived; restore it before subscribing to it.",
            code="project_archived",
        )
    return project


def _ordered(events: list[str]) -> list[str]:
    """Event types in the document's order, without duplicates."""
    return [event for event in EVENT_TYPES if event in set(events)]
