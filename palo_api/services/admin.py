"""Operator actions behind `palo admin`: organizations, users and API clients."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from palo_api.db.models import ORG_ROLES, PLANS, ApiClient, Organization, User
from palo_api.db.types import utcnow
from palo_api.errors import Conflict, NotFound, ValidationFailed
from palo_api.secrets import SecretHasher, new_client_id, new_client_secret

logger = logging.getLogger(__name__)

Model = TypeVar("Model")


@dataclass(frozen=True)
class NewClient:
    client: ApiClient
    secret: str


def create_org(*, session: Session, name: str, plan: str) -> Organization:
    """Create an organization on ``plan``."""
    _require(plan in PLANS, "plan", f"must be one of {', '.join(PLANS)}")
    _require(1 <= len(name.strip()) <= 200, "name", "must be 1 to 200 characters")

    org = Organization(name=name.strip(), plan=plan)
    session.add(org)
    session.commit()
    logger.info("organization %s created on plan %s", org.id, plan)
    return org


def set_plan(*, session: Session, org_id: uuid.UUID, plan: str) -> Organization:
    """Move an organization to another plan, effective on its next request."""
    _require(plan in PLANS, "plan", f"must be one of {', '.join(PLANS)}")
    org = _get(session, Organization, org_id, "organization")

    org.plan = plan
    session.commit()
    logger.info("organization %s moved to plan %s", org.id, plan)
    return org


def create_user(
    *, session: Session, org_id: uuid.UUID, email: str, name: str, org_role: str
) -> User:
    """Add a user to an organization; emails are unique across the service."""
    _require(org_role in ORG_ROLES, "org_role", "must be admin or member")
    _require("@" in email and len(email) <= 320, "email", "must be an email address")
    _require(1 <= len(name.strip()) <= 200, "name", "must be 1 to 200 characters")
    _get(session, Organization, org_id, "organization")
    email = email.strip().lower()
    taken = session.scalar(select(func.count()).where(User.email == email))
    if taken:
        raise Conflict(f"A user with email {email} already exists.")

    user = User(org_id=org_id, email=email, name=name.strip(), org_role=org_role)
    session.add(user)
    session.commit()
    logger.info("user %s created in organization %s", user.id, org_id)
    return user


def create_client(
    *, session: Session, hasher: SecretHasher, user_id: uuid.UUID, name: str | None
) -> NewClient:
    """Create API credentials for a user; the secret is returned only here."""
    user = _get(session, User, user_id, "user")
    secret = new_client_secret()

    client = ApiClient(
        client_id=new_client_id(),
        secret_hash=hasher.hash(secret),
        user_id=user.id,
        name=name,
    )
    session.add(client)
    session.commit()
    logger.info("client %s created for user %s", client.client_id, user.id)
    return NewClient(client=client, secret=secret)


def disable_client(*, session: Session, client_id: str) -> ApiClient:
    """Disable a client; its tokens stop working on their next request."""
    client = session.scalar(select(ApiClient).where(ApiClient.client_id == client_id))
    if client is None:
        raise NotFound(f"No client {client_id}.")

    if client.disabled_at is None:
        client.disabled_at = utcnow()
        session.commit()
        logger.info("client %s disabled", client_id)
    return client


def client_exists(*, session: Session, client_id: str) -> bool:
    """Whether a client with this id exists (disabled or not)."""
    found = session.scalar(select(ApiClient.id).where(ApiClient.client_id == client_id))
    return found is not None


def _require(condition: bool, field: str, message: str) -> None:
    if not condition:
        raise ValidationFailed(details=[{"field": field, "message": message}])


def _get(session: Session, model: type[Model], ident: uuid.UUID, label: str) -> Model:
    found = session.get(model, ident)
    if found is None:
        raise NotFound(f"No {label} {ident}.")
    return found
