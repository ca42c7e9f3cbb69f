"""Client secrets: random, shown once, stored only as an argon2 hash."""

from __future__ import annotations

import asyncio
import secrets
import threading
import weakref

import anyio
import anyio.to_thread
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
        # The same bound for callers on an event loop, who wait here without
        # holding a thread; one limiter per loop, as anyio's are loop-bound.
        self._concurrency = concurrency
        self._loop_slots: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, anyio.CapacityLimiter
        ] = weakref.WeakKeyDictionary()
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

    async def verify_async(self, stored_hash: str | None, secret: str) -> bool:
        """``verify`` for the event loop: a caller waiting its turn holds no thread."""
        loop = asyncio.get_running_loop()
        slots = self._loop_slots.get(loop)
        if slots is None:
            slots = self._loop_slots[loop] = anyio.CapacityLimiter(self._concurrency)
        return await anyio.to_thread.run_sync(
            self.verify, stored_hash, secret, limiter=slots
        )
