"""SQLite under many concurrent writers: they queue, none fails "database is locked"."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from palo_api.db import engine as engine_module
from palo_api.db.engine import Database

WRITERS = 24
HOLD_SECONDS = 0.02


def _hammer(database: Database) -> list[BaseException]:
    """Run WRITERS threads, each holding the write lock a moment; their errors."""
    with database.write() as session:
        session.execute(text("CREATE TABLE IF NOT EXISTS tally (n INTEGER)"))
        session.commit()
    failures: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def writer() -> None:
        start.wait()
        try:
            with database.write() as session:
                session.execute(text("INSERT INTO tally (n) VALUES (1)"))
                time.sleep(HOLD_SECONDS)
                session.commit()
        except Exception as exc:
            failures.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    # Far shorter than WRITERS * HOLD_SECONDS: a writer polling SQLite's lock
    # for its turn would give up long before the others are done.
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 50)


@pytest.mark.usefixtures("short_busy_timeout")
def test_concurrent_sqlite_writers_queue_instead_of_failing(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'queue.db'}")
    try:
        failures = _hammer(database)
        with database.read() as session:
            written = session.execute(text("SELECT count(*) FROM tally")).scalar_one()
    finally:
        database.dispose()

    assert failures == []
    assert written == WRITERS


@pytest.mark.usefixtures("short_busy_timeout")
def test_without_the_queue_the_same_load_fails(tmp_path: Path) -> None:
    """The load above is heavy enough to matter: SQLite alone refuses some."""
    database = Database(f"sqlite:///{tmp_path / 'bare.db'}")
    database._sqlite_writers = None
    try:
        failures = _hammer(database)
    finally:
        database.dispose()

    assert failures
    assert all("database is locked" in str(exc) for exc in failures)
