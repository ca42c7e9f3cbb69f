"""Client secrets: argon2 hashing, constant-cost refusals, bounded concurrency."""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import anyio.to_thread

from palo_api.secrets import SecretHasher, new_client_id, new_client_secret


def test_secret_verifies_only_against_its_own_hash() -> None:
    hasher = SecretHasher()
    secret = new_client_secret()
    stored = hasher.hash(secret)

    assert stored.startswith("$argon2id$")
    assert secret not in stored
    assert hasher.verify(stored, secret)
    assert not hasher.verify(stored, secret + "x")
    assert not hasher.verify(None, secret)
    assert not hasher.verify("not-a-hash", secret)


def test_ids_and_secrets_are_random_and_prefixed() -> None:
    ids = {new_client_id() for _ in range(50)}
    secrets = {new_client_secret() for _ in range(50)}

    assert len(ids) == len(secrets) == 50
    assert all(i.startswith("palo_ci_") for i in ids)
    assert all(s.startswith("palo_cs_") and len(s) > 40 for s in secrets)


class _CountingHasher:
    """Stands in for argon2's hasher and records how many run at once.

    It passes verification on to ``real``, or accepts every secret if None.
    """

    def __init__(self, real: Any, seconds: float = 0.01) -> None:
        self.real = real
        self.seconds = seconds
        self.running = 0
        self.peak = 0
        self.lock = threading.Lock()

    def verify(self, stored: str, secret: str) -> bool:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            time.sleep(self.seconds)  # widen the window in which overlaps show
            return self.real is None or bool(self.real.verify(stored, secret))
        finally:
            with self.lock:
                self.running -= 1


def test_no_more_than_the_allowed_hashes_run_at_once() -> None:
    hasher = SecretHasher(concurrency=2)
    stored = hasher.hash("secret")
    counting = _CountingHasher(hasher._hasher)
    hasher._hasher = counting  # type: ignore[assignment]

    threads = [
        threading.Thread(target=hasher.verify, args=(stored, "secret"))
        for _ in range(12)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert counting.peak == 2


BURST = 100  # far more than the 40 threads of anyio's default pool


def test_async_callers_waiting_for_the_hasher_hold_no_thread() -> None:
    hasher = SecretHasher(concurrency=2)
    quick = _CountingHasher(real=None, seconds=0.005)
    hasher._hasher = quick  # type: ignore[assignment]
    done = 0
    done_when_other_work_ran: list[int] = []

    async def verify_one() -> None:
        nonlocal done
        assert await hasher.verify_async("$argon2id$stored", "secret")
        done += 1

    async def other_work() -> None:
        await anyio.sleep(0.02)  # let the burst queue up first
        # Any other request's blocking work goes to the default thread pool.
        await anyio.to_thread.run_sync(lambda: None)
        done_when_other_work_ran.append(done)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(BURST):
                group.start_soon(verify_one)
            group.start_soon(other_work)

    anyio.run(main)

    assert done == BURST
    assert quick.peak == 2
    # Had each waiting caller held a pool thread, the other work would have
    # queued behind the 60 callers that found the pool full before it.
    assert done_when_other_work_ran[0] < 20
