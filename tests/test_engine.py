"""SQLite under many concurrent writers: they queue, none fails "database is locked"."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from palo_api.db import engine as engine_module
from palo_api.db.engine import Database
from tests.conftest import backend_pid, terminate_backend

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


# PostgreSQL: reads without a transaction, and pings only after idleness.


@pytest.fixture
def postgres(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    return database_url


def _pings(monkeypatch: pytest.MonkeyPatch, database: Database) -> list[object]:
    """Record each ping the pool sends from now on."""
    sent: list[object] = []
    dialect = database.engine.dialect
    real = dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        sent.append(dbapi_connection)
        return real(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted)
    return sent


def test_postgres_lookups_run_outside_a_transaction_and_reads_inside_one(
    postgres: str,
) -> None:
    from psycopg.pq import TransactionStatus

    database = Database(postgres)

    def status_in(session_factory: object) -> object:
        with session_factory() as session:  # type: ignore[operator]
            session.execute(text("SELECT 1"))
            return (
                session.connection().connection.dbapi_connection.info.transaction_status
            )

    try:
        # The same pooled connection serves each kind in turn, and keeps none
        # of the previous one's settings.
        for _ in range(2):
            assert status_in(database.lookup) == TransactionStatus.IDLE
            assert status_in(database.read) == TransactionStatus.INTRANS
            assert status_in(database.write) == TransactionStatus.INTRANS
        with database.read() as session:
            level = session.scalar(text("SHOW transaction_isolation"))
            read_only = session.scalar(text("SHOW transaction_read_only"))
        assert (level, read_only) == ("repeatable read", "on")
        with database.write() as session:
            level = session.scalar(text("SHOW transaction_isolation"))
            read_only = session.scalar(text("SHOW transaction_read_only"))
        assert (level, read_only) == ("read committed", "off")
    finally:
        database.dispose()


def test_a_read_sees_one_snapshot_whatever_commits_meanwhile(
    database_url: str,
) -> None:
    """A response's statements (a page and its total, a ticket and its
    history) must not mix two moments."""
    database = Database(database_url)
    with database.write() as session:
        session.execute(text("DROP TABLE IF EXISTS snapshot_probe"))
        session.commit()
    try:
        with database.write() as session:
            session.execute(text("CREATE TABLE snapshot_probe (n INTEGER)"))
            session.execute(text("INSERT INTO snapshot_probe VALUES (1)"))
            session.commit()
        with database.read() as reader:
            before = reader.scalar(text("SELECT count(*) FROM snapshot_probe"))
            with database.write() as writer:
                writer.execute(text("INSERT INTO snapshot_probe VALUES (2)"))
                writer.commit()
            after = reader.scalar(text("SELECT count(*) FROM snapshot_probe"))
        assert before == after == 1
        with database.read() as session:
            assert session.scalar(text("SELECT count(*) FROM snapshot_probe")) == 2
    finally:
        with database.write() as session:
            session.execute(text("DROP TABLE IF EXISTS snapshot_probe"))
            session.commit()
        database.dispose()


def test_a_connection_returned_a_moment_ago_is_used_without_a_ping(
    postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = Database(postgres)
    try:
        pings = _pings(monkeypatch, database)
        first = backend_pid(database)
        for _ in range(5):
            assert backend_pid(database) == first
        assert pings == []
    finally:
        database.dispose()


def test_an_idle_connection_is_pinged_and_replaced_when_the_server_closed_it(
    postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "POSTGRES_PING_AFTER_IDLE_SECONDS", 0.2)
    database = Database(postgres)
    try:
        pings = _pings(monkeypatch, database)
        first = backend_pid(database)
        time.sleep(0.3)
        # Still alive after the pause: pinged once, and kept.
        assert backend_pid(database) == first
        assert len(pings) == 1

        terminate_backend(postgres, first)
        time.sleep(0.3)
        # Closed by the server while idle: the ping fails, the pool connects
        # anew, and the caller never sees the dead connection.
        replacement = backend_pid(database)
        assert replacement != first
        assert len(pings) == 2
    finally:
        database.dispose()


def test_without_the_idle_ping_the_closed_connection_fails_its_caller(
    postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test above would pass without a ping only if nothing was pooled."""
    monkeypatch.setattr(engine_module, "POSTGRES_PING_AFTER_IDLE_SECONDS", 3600.0)
    database = Database(postgres)
    try:
        first = backend_pid(database)
        terminate_backend(postgres, first)
        time.sleep(0.3)
        with pytest.raises(OperationalError):
            backend_pid(database)
        # The failure invalidates the pool: the next caller connects anew.
        assert backend_pid(database) != first
    finally:
        database.dispose()
