"""Client authentication, token issuance and the caller behind a bearer token."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from palo_api.db.models import ApiClient, Organization, User
from palo_api.errors import InvalidClient, Unauthenticated
from palo_api.tokens import IssuedToken, TokenClaims, TokenError, TokenService

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    """The user an API client acts for, as seen by the services."""

    user_id: uuid.UUID
    org_id: uuid.UUID
    org_role: str
    plan: str
    client_id: str
    auth_time: int

    @property
    def is_org_admin(self) -> bool:
        return self.org_role == "admin"


@dataclass(frozen=True)
class StoredClient:
    """What the token endpoint needs of an API client, read before hashing."""

    client_id: str
    secret_hash: str
    user_id: uuid.UUID
    org_id: uuid.UUID
    disabled: bool


def find_client(*, session: Session, client_id: str) -> StoredClient | None:
    """The client with this id, or None.

    Read in a session of its own, so no database connection is held while
    the secret is verified (tens of milliseconds, longer under a burst).
    """
    # A NUL (possible through HTTP Basic) cannot be in any client id, and
    # PostgreSQL would refuse to even compare it: treat it as unknown.
    if "\x00" in client_id:
        return None
    client = session.scalar(select(ApiClient).where(ApiClient.client_id == client_id))
    if client is None:
        return None
    return StoredClient(
        client_id=client.client_id,
        secret_hash=client.secret_hash,
        user_id=client.user_id,
        org_id=client.user.org_id,
        disabled=client.disabled_at is not None,
    )


def issue_token(
    *,
    tokens: TokenService,
    client_id: str,
    client: StoredClient | None,
    secret_valid: bool,
) -> IssuedToken:
    """Exchange verified client credentials for an access token.

    ``secret_valid`` comes from ``SecretHasher.verify`` on the client's hash,
    or on none when the client is unknown, so every refusal costs the same.
    """
    if client is None or not secret_valid or client.disabled:
        logger.warning("token refused for client_id=%r", client_id[:64])
        raise InvalidClient()
    return tokens.issue(
        user_id=client.user_id, org_id=client.org_id, client_id=client.client_id
    )


def refresh_token(*, tokens: TokenService, principal: Principal) -> IssuedToken:
    """A new token for the same caller, never reaching past auth_time + max age."""
    now = int(time.time())
    if now >= principal.auth_time + tokens.refresh_max_age_seconds:
        raise Unauthenticated("The session is too old to refresh; authenticate again.")

    return tokens.issue(
        user_id=principal.user_id,
        org_id=principal.org_id,
        client_id=principal.client_id,
        auth_time=principal.auth_time,
        now=now,
    )


def authenticate_bearer(
    *, session: Session, tokens: TokenService, token: str
) -> Principal:
    """The caller behind ``token``; disabled clients are refused at once."""
    try:
        claims = tokens.verify(token)
    except TokenError as exc:
        raise Unauthenticated(str(exc)) from exc

    return load_principal(session=session, claims=claims)


# Run on every request: built once, with its values as bound parameters.
_PRINCIPAL = (
    select(ApiClient.disabled_at, User.org_id, User.org_role, Organization.plan)
    .join(User, User.id == ApiClient.user_id)
    .join(Organization, Organization.id == User.org_id)
    .where(
        ApiClient.client_id == bindparam("client_id"),
        User.id == bindparam("user_id"),
    )
)


def load_principal(*, session: Session, claims: TokenClaims) -> Principal:
    """Check that the token's client and user still exist and may act."""
    row = session.execute(
        _PRINCIPAL, {"client_id": claims.client_id, "user_id": claims.subject}
    ).one_or_none()
    if row is None or row.disabled_at is not None or row.org_id != claims.org_id:
        raise Unauthenticated("The access token's client is disabled or gone.")

    return Principal(
        user_id=claims.subject,
        org_id=row.org_id,
        org_role=row.org_role,
        plan=row.plan,
        client_id=claims.client_id,
        auth_time=claims.auth_time,
    )
