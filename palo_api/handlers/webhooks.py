"""Webhook operations: subscriptions, their secrets, and their delivery log."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.responses import Response

from palo_api.handlers import Reply, caller, no_content, runtime
from palo_api.schemas import (
    dump_page,
    webhook_delivery_out,
    webhook_out,
    webhook_with_secret_out,
)
from palo_api.services import webhooks


def _policy() -> webhooks.TargetPolicy:
    return webhooks.TargetPolicy(
        allow_private=runtime().settings.webhook_allow_private_targets
    )


def list_webhooks(limit: int, offset: int, project_id: str | None = None) -> Reply:
    with runtime().database.read() as session:
        page = webhooks.list_webhooks(
            session=session,
            principal=caller(),
            project_id=uuid.UUID(project_id) if project_id else None,
            limit=limit,
            offset=offset,
        )
        items = [webhook_out.dump(w) for w in page.webhooks]
    return dump_page(items, total=page.total, limit=limit, offset=offset), 200


def create_webhook(body: dict[str, Any]) -> Reply:
    database, principal = runtime().database, caller()
    # Who may subscribe is settled first; then the URL is resolved and
    # checked outside any transaction, since that can take seconds.
    with database.read() as session:
        webhooks.authorize_create(session=session, principal=principal, webhook_in=body)
    _policy().check(body["url"])
    with database.write() as session:
        webhook = webhooks.create_webhook(
            session=session, principal=principal, webhook_in=body
        )
        reply = webhook_with_secret_out.dump(webhook)
    return reply, 201, {"Location": f"/v1/webhooks/{webhook.id}"}


def get_webhook(webhook_id: str) -> Reply:
    with runtime().database.read() as session:
        webhook = webhooks.get_webhook(
            session=session, principal=caller(), webhook_id=uuid.UUID(webhook_id)
        )
        return webhook_out.dump(webhook), 200


def update_webhook(webhook_id: str, body: dict[str, Any]) -> Reply:
    database, principal = runtime().database, caller()
    if "url" in body:
        with database.read() as session:
            webhooks.get_webhook(
                session=session, principal=principal, webhook_id=uuid.UUID(webhook_id)
            )
        _policy().check(body["url"])
    with database.write() as session:
        webhook = webhooks.update_webhook(
            session=session,
            principal=principal,
            webhook_id=uuid.UUID(webhook_id),
            webhook_in=body,
        )
        return webhook_out.dump(webhook), 200


def delete_webhook(webhook_id: str) -> Response:
    with runtime().database.write() as session:
        webhooks.delete_webhook(
            session=session, principal=caller(), webhook_id=uuid.UUID(webhook_id)
        )
    return no_content()


def rotate_webhook_secret(webhook_id: str) -> Reply:
    with runtime().database.write() as session:
        webhook = webhooks.rotate_secret(
            session=session, principal=caller(), webhook_id=uuid.UUID(webhook_id)
        )
        return webhook_with_secret_out.dump(webhook), 200


def ping_webhook(webhook_id: str) -> Reply:
    with runtime().database.write() as session:
        delivery = webhooks.ping(
            session=session, principal=caller(), webhook_id=uuid.UUID(webhook_id)
        )
        return webhook_delivery_out.dump(delivery), 202


def list_webhook_deliveries(webhook_id: str, limit: int, offset: int) -> Reply:
    with runtime().database.read() as session:
        page = webhooks.list_deliveries(
            session=session,
            principal=caller(),
            webhook_id=uuid.UUID(webhook_id),
            limit=limit,
            offset=offset,
        )
        items = [webhook_delivery_out.dump(d) for d in page.deliveries]
    return dump_page(items, total=page.total, limit=limit, offset=offset), 200


def redeliver_webhook_delivery(webhook_id: str, delivery_id: str) -> Reply:
    with runtime().database.write() as session:
        delivery = webhooks.redeliver(
            session=session,
            principal=caller(),
            webhook_id=uuid.UUID(webhook_id),
            delivery_id=uuid.UUID(delivery_id),
        )
        return webhook_delivery_out.dump(delivery), 202
