"""Client secrets: random, shown once, stored only as an argon2 hash."""

from __future__ import annotations

import secrets
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

CLIENT_ID_PREFIX = "palo_ci_"
CLIENT_SECRET_PREFIX = "palo_cs_"  # noqa: S105 - a prefix, not a secret


def new_client_id() -> str:
    """A random, unguessable public client id."""
    return CLIENT_ID_PREFIX + secrets.token_hex(12)


def new_client_secret() -> str:
    """A random client secret with 256 bits of entropy."""
    return CLIENT_SECRET_PREFIX + secrets.token_urlsafe(32)


class SecretHasher:
    """argon2id hashing with a constant-cost answer for unknown clients."""

    def __init__(self, concurrency: int = 2) -> None:
        self._hasher = PasswordHasher()
        # Each argon2 run takes 64 MiB and a core for tens of milliseconds:
        # a burst of token requests queues here instead of taking the
        # process's memory and every thread of its pool.
        self._slots = threading.BoundedSemaphore(concurrency)
        # Verifying against this when the client id is unknown makes a wrong id
        # cost as much as a wrong secret, so timing does not reveal valid ids.
        self._decoy = self._hasher.hash(secrets.token_urlsafe(32))

    def hash(self, secret: str) -> str:
        with self._slots:
            return self._hasher.hash(secret)

    def verify(self, stored_hash: str | None, secret: str) -> bool:
        """Whether ``secret`` matches; a None hash still costs one verification."""
        try:
            with self._slots:
                matched = self._hasher.verify(stored_hash or self._decoy, secret)
        except (VerificationError, InvalidHashError):
            return False
        return matched and stored_hash is not None
