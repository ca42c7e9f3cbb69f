"""Throttling of failed token requests, per client id and per source address.

Counts live in ``login_throttles`` so that every worker of every host sees
the same ones. Each key has a fixed window that opens with its first
failure. An attempt takes a *pending* place in the window before its secret
is checked, in one short transaction, and settles it afterwards: a failure
becomes one of the window's failures, a success just frees the place. No
more attempts are pending than the failures the window still allows, so a
burst of parallel guesses gets exactly the allowed number of checks; an
attempt that finds every remaining place pending waits for one to settle.
Once a key holds its maximum of failures, every attempt, even with the
right secret, is refused until the window ends. Places that are never
settled, because the attempt's process died or the database went away
before it could settle, are forgotten once the latest reservation on their
key is older than any check can take (``PENDING_EXPIRY``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from palo_api.config import Settings
from palo_api.db.engine import Database, skip_locked, upsert_insert
from palo_api.db.models import LoginThrottle
from palo_api.errors import TooManyRequests

# Expired windows are swept at most this often per process.
SWEEP_INTERVAL_SECONDS = 60.0
# No check holds a place this long: the client lookup and one argon2
# verification, queued behind a process's other verifications.
PENDING_EXPIRY = timedelta(seconds=60)
SWEEP_BATCH = 1000


class TooManyAttempts(TooManyRequests):
    code = "too_many_attempts"
    default_message = "Too many failed attempts; try again later."


class AllPlacesPending(Exception):
    """Every place left in a window is held by an attempt being checked."""


@dataclass(frozen=True)
class Reservation:
    """The places an attempt took: each key with the window it counted in."""

    windows: dict[str, datetime]


def client_key(client_id: str) -> str:
    """The key of a client id; hashed, since anyone may send any string."""
    digest = hashlib.sha256(client_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"client:{digest}"


def address_key(address: str | None) -> str:
    """The key of a source address; an IPv6 client is one /64 network.

    One host usually holds a whole IPv6 /64, and would otherwise get a fresh
    allowance from each of its addresses. An IPv4-mapped IPv6 address counts
    as its IPv4 address.
    """
    if not address:
        return "address:unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return f"address:{address[:200]}"
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return f"address:{parsed.ipv4_mapped}"
        return f"address:{ipaddress.IPv6Network((parsed, 64), strict=False)}"
    return f"address:{parsed}"


class LoginThrottler:
    """Reserves, refuses and gives back places in the failure windows."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.window = timedelta(seconds=settings.login_window_seconds)
        self.max_per_client = settings.login_max_failures
        self.max_per_address = settings.login_max_failures_per_address
        self._sweep_lock = threading.Lock()
        self._last_sweep = -math.inf

    def reserve(
        self, *, client_id: str, address: str | None, now: datetime | None = None
    ) -> Reservation:
        """Take a pending place per key.

        Raises TooManyAttempts when a key's failures reached its limit, and
        AllPlacesPending when the places left are all being checked; either
        way nothing is taken.
        """
        now = now or datetime.now(UTC)
        limits = {
            client_key(client_id): self.max_per_client,
            address_key(address): self.max_per_address,
        }
        windows: dict[str, datetime] = {}
        with self.database.write() as session:
            # One lock order for every request, so two never wait on each other.
            for key in sorted(limits):
                windows[key] = self._take(session, key, limits[key], now)
            session.commit()
        self._maybe_sweep(now)
        return Reservation(windows=windows)

    def settle(self, reservation: Reservation, *, failed: bool) -> None:
        """Turn the pending places into failures, or free them after a success.

        Tried a second time on a fresh connection if the first one was found
        closed (the database restarted while the secret was being checked):
        a place never given back would hold a client's logins for a minute.
        """
        try:
            self._settle(reservation, failed=failed)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            self._settle(reservation, failed=failed)

    def _settle(self, reservation: Reservation, *, failed: bool) -> None:
        with self.database.write() as session:
            for key, window_start in sorted(reservation.windows.items()):
                session.execute(
                    update(LoginThrottle)
                    .where(
                        LoginThrottle.key == key,
                        LoginThrottle.window_start == window_start,
                        LoginThrottle.pending > 0,
                    )
                    .values(
                        pending=LoginThrottle.pending - 1,
                        failures=LoginThrottle.failures + (1 if failed else 0),
                    )
                )
            session.commit()

    def _take(self, session: Session, key: str, limit: int, now: datetime) -> datetime:
        """Take a pending place on ``key`` and return its window's start."""
        insert = upsert_insert(session)
        statement = insert(LoginThrottle).values(
            key=key, window_start=now, failures=0, pending=0
        )
        # A no-op update rather than DO NOTHING: it locks the row until commit,
        # and if a sweep deletes the row meanwhile, the insert happens instead.
        locked = statement.on_conflict_do_update(
            index_elements=[LoginThrottle.key],
            set_={"key": statement.excluded.key},
        ).returning(
            LoginThrottle.window_start,
            LoginThrottle.failures,
            LoginThrottle.pending,
            LoginThrottle.pending_since,
        )
        window_start, failures, pending, pending_since = session.execute(locked).one()
        if pending and (pending_since is None or pending_since + PENDING_EXPIRY <= now):
            # Every attempt still counted as pending took its place long ago:
            # none of them will settle.
            pending = 0
        if window_start + self.window <= now:
            # The window ended; attempts still pending from it settle into it.
            window_start, failures, pending = now, 0, 0
        elif failures == 0 and pending == 0:
            # Nothing failed yet: the window opens with this attempt.
            window_start = now
        if failures >= limit:
            ends = window_start + self.window
            seconds = max(math.ceil((ends - now).total_seconds()), 1)
            source = (
                "for this client"
                if key.startswith("client:")
                else ("from this address")
            )
            raise TooManyAttempts(
                f"Too many failed attempts {source}; try again in {seconds} seconds.",
                headers={"Retry-After": str(seconds)},
            )
        if failures + pending >= limit:
            raise AllPlacesPending(key)
        session.execute(
            update(LoginThrottle)
            .where(LoginThrottle.key == key)
            .values(
                window_start=window_start,
                failures=failures,
                pending=pending + 1,
                pending_since=now,
            )
        )
        return window_start

    def _maybe_sweep(self, now: datetime) -> None:
        """Delete windows that ended, at most once a minute per process."""
        moment = time.monotonic()
        with self._sweep_lock:
            if moment - self._last_sweep < SWEEP_INTERVAL_SECONDS:
                return
            self._last_sweep = moment
        expired = (
            select(LoginThrottle.key)
            .where(LoginThrottle.window_start <= now - self.window)
            .limit(SWEEP_BATCH)
        )
        with self.database.write() as session:
            # Never wait for a window another request is using.
            expired = skip_locked(session, expired)
            session.execute(delete(LoginThrottle).where(LoginThrottle.key.in_(expired)))
            session.commit()
