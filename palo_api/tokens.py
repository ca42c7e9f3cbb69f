"""Access tokens: HS256 JWTs signed with a configured, rotatable key set."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey
from joserfc.jwt import JWTClaimsRegistry

from palo_api.config import Settings

ALGORITHM = "HS256"


class TokenError(Exception):
    """A token that must be refused; the message is safe to show the client."""


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int


@dataclass(frozen=True)
class TokenClaims:
    subject: uuid.UUID
    org_id: uuid.UUID
    client_id: str
    auth_time: int
    expires_at: int
    token_id: str


class TokenService:
    """Signs new tokens with the active key and verifies with any configured key."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._active_kid = settings.active_signing_key.kid
        self._keys = KeySet(
            [
                OctKey.import_key(key.secret, {"kid": key.kid, "alg": ALGORITHM})
                for key in settings.signing_keys
            ]
        )
        self._kids = {key.kid for key in settings.signing_keys}

    @property
    def refresh_max_age_seconds(self) -> int:
        return self._settings.refresh_max_age_seconds

    def issue(
        self,
        *,
        user_id: uuid.UUID,
        org_id: uuid.UUID,
        client_id: str,
        auth_time: int | None = None,
        now: int | None = None,
    ) -> IssuedToken:
        """Sign a token; a refresh passes the original ``auth_time``."""
        now = int(time.time()) if now is None else now
        auth_time = now if auth_time is None else auth_time
        expires_at = min(
            now + self._settings.token_ttl_seconds,
            auth_time + self._settings.refresh_max_age_seconds,
        )
        claims = {
            "iss": self._settings.token_issuer,
            "sub": str(user_id),
            "org": str(org_id),
            "client_id": client_id,
            "iat": now,
            "nbf": now,
            "exp": expires_at,
            "jti": str(uuid.uuid4()),
            "auth_time": auth_time,
        }
        header = {"alg": ALGORITHM, "kid": self._active_kid}
        token = jwt.encode(header, claims, self._keys, algorithms=[ALGORITHM])
        return IssuedToken(access_token=token, expires_in=expires_at - now)

    def verify(self, token: str, *, now: int | None = None) -> TokenClaims:
        """Check signature, algorithm, key id and claims, or raise TokenError."""
        try:
            decoded = jwt.decode(token, self._select_key, algorithms=[ALGORITHM])
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise TokenError("The access token is malformed or badly signed.") from exc

        registry = JWTClaimsRegistry(
            now=now,
            leeway=self._settings.token_leeway_seconds,
            iss={"essential": True, "value": self._settings.token_issuer},
            sub={"essential": True},
            exp={"essential": True},
            nbf={"essential": True},
            iat={"essential": True},
            jti={"essential": True},
        )
        try:
            registry.validate(decoded.claims)
        except JoseError as exc:
            raise TokenError(_claims_message(exc)) from exc
        return _typed_claims(decoded.claims)

    def _select_key(self, obj: Any) -> OctKey:
        header = obj.headers()
        kid = header.get("kid")
        if header.get("alg") != ALGORITHM or kid not in self._kids:
            raise TokenError("The access token names an unknown key or algorithm.")
        key = self._keys.get_by_kid(kid)
        assert isinstance(key, OctKey)
        return key


def _claims_message(exc: JoseError) -> str:
    if getattr(exc, "error", "") == "expired_token":
        return "The access token has expired."
    return "The access token's claims are invalid."


def _typed_claims(claims: dict[str, Any]) -> TokenClaims:
    """The claims PALO relies on, each of the type it must have, or TokenError.

    Only a holder of a signing key can put odd values here, but a key can
    leak or a bug can sign one: an infinite time, a client id no database
    can store, or a number where text belongs is refused, not a crash.
    """
    try:
        texts = [claims[name] for name in ("sub", "org", "client_id", "jti")]
        if not all(isinstance(text, str) for text in texts):
            raise TypeError("a text claim is not text")
        client_id = str(claims["client_id"])
        client_id.encode("utf-8")  # no lone surrogate
        if "\x00" in client_id:
            raise ValueError("NUL in client_id")
        return TokenClaims(
            subject=uuid.UUID(claims["sub"]),
            org_id=uuid.UUID(claims["org"]),
            client_id=client_id,
            auth_time=_seconds(claims["auth_time"]),
            expires_at=_seconds(claims["exp"]),
            token_id=str(claims["jti"]),
        )
    except (KeyError, ValueError, TypeError, OverflowError) as exc:
        raise TokenError("The access token's claims are invalid.") from exc


def _seconds(value: Any) -> int:
    """A NumericDate as whole seconds; a bool or a non-finite number is refused."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("not a number")
    seconds = int(value)  # OverflowError for infinity, ValueError for NaN
    if not 0 <= seconds < 2**53:
        raise ValueError("out of range")
    return seconds
