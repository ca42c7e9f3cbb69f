"""Engine and session factory for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 10_000
# How long opening a PostgreSQL connection may take. libpq's default is to
# wait for ever: with a database host that accepts connections but does not
# answer, every request (and every readiness probe) would hang, not fail.
POSTGRES_CONNECT_TIMEOUT_SECONDS = 10
# How long a writer waits for its turn among this process's writers (SQLite).
SQLITE_WRITER_QUEUE_SECONDS = 30.0
# A pooled PostgreSQL connection idle for longer than this is tested with a
# round trip before it is handed out; one used more recently is trusted.
POSTGRES_PING_AFTER_IDLE_SECONDS = 1.0


def normalise_url(url: str) -> str:
    """Use psycopg 3 for a bare ``postgresql://`` URL."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def build_engine(url: str) -> Engine:
    """Create an engine tuned for several gunicorn workers writing at once."""
    url = normalise_url(url)
    if not url.startswith("sqlite"):
        # A connect_timeout given in the URL is kept.
        timeout = {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS}
        if "connect_timeout" in make_url(url).query:
            timeout = {}
        engine = create_engine(
            url,
            # Every request in flight holds a connection for its unit of work,
            # and connections past pool_size are closed as soon as they are
            # returned: with 5, a worker serving 8 requests at once opened a
            # new PostgreSQL session (a backend process and the driver's
            # set-up queries) for a good part of them.
            pool_size=12,
            max_overflow=8,
            # The most recently returned connection is handed out first, so
            # under load the same few stay busy and need no ping (below).
            pool_use_lifo=True,
            # Errors and logs never carry statement parameters: they hold
            # webhook secrets and whatever clients sent.
            hide_parameters=True,
            connect_args=timeout,
        )
        _ping_after_idle(engine, POSTGRES_PING_AFTER_IDLE_SECONDS)
        return engine

    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        hide_parameters=True,
    )
    _tune_sqlite(engine)
    return engine


def _ping_after_idle(engine: Engine, idle_seconds: float) -> None:
    """Test a pooled connection before use only when it has been idle a while.

    ``pool_pre_ping`` costs a round trip on every checkout, and a request
    checks out two or three connections: under load that was a tenth of a
    worker's time. A connection that was returned a moment ago is as good as
    a ping; one that sat in the pool may have been closed by the server, a
    proxy or a restart, and is tested. A failed test discards it and the pool
    tries another or connects anew, as ``pool_pre_ping`` would.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["palo_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("palo_idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("a pooled connection failed its ping") from exc


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # pysqlite's own transaction handling would defer BEGIN; we issue it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A deferred transaction that reads and then writes cannot wait for the
        # write lock: SQLite fails it at once with "database is locked". Writers
        # take the lock up front, where busy_timeout makes them queue instead.
        if conn.get_execution_options().get("palo_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


class WriterQueueTimeout(Exception):
    """A SQLite writer waited too long for its turn in this process."""


class Database:
    """The engine of one process and the sessions opened on it."""

    def __init__(self, url: str) -> None:
        self.engine = build_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        # A read is one snapshot: every statement of a response sees the same
        # committed state (a ticket and its history, a page and its total).
        # On PostgreSQL that takes REPEATABLE READ, read-only, which never
        # fails with a serialization error; SQLite's transaction in WAL mode
        # is one already.
        self._reader = sessionmaker(
            self.engine
            if self.is_sqlite
            else self.engine.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            ),
            expire_on_commit=False,
        )
        # A lookup of one statement needs no transaction at all: on PostgreSQL
        # it runs without BEGIN and ROLLBACK, two round trips of the three.
        self._looker = sessionmaker(
            self.engine
            if self.is_sqlite
            else self.engine.execution_options(isolation_level="AUTOCOMMIT"),
            expire_on_commit=False,
        )
        self._writer = sessionmaker(
            self.engine.execution_options(palo_write=True), expire_on_commit=False
        )
        # SQLite has one write lock, and its busy handler polls with growing
        # sleeps: dozens of threads polling for it starve some past any
        # timeout. Writers of one process queue here instead, so at most one
        # per process waits on SQLite. PostgreSQL needs no such queue.
        self._sqlite_writers = threading.Lock() if self.is_sqlite else None

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for a unit of work that only reads, on one snapshot."""
        with self._reader() as session:
            yield session

    @contextmanager
    def lookup(self) -> Iterator[Session]:
        """A session for reads whose statements need not share a snapshot:
        each sees the latest commits. For a single statement (the caller's
        lookup on every request), or a list whose one statement carries its
        page and total together."""
        with self._looker() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session for a unit of work that writes; the caller commits."""
        queue = self._sqlite_writers
        if queue is None:
            with self._writer() as session:
                yield session
            return
        if not queue.acquire(timeout=SQLITE_WRITER_QUEUE_SECONDS):
            raise WriterQueueTimeout
        try:
            with self._writer() as session:
                yield session
        finally:
            queue.release()

    def dispose(self) -> None:
        """Close every pooled connection (after a fork, or at shutdown)."""
        self.engine.dispose()


def upsert_insert(
    session: Session,
) -> Callable[[Any], postgresql.Insert | sqlite.Insert]:
    """The ``insert`` of the session's dialect, which has ``on_conflict_*``."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert
    return sqlite.insert


def skip_locked(session: Session, query: Any, of: Any = None) -> Any:
    """``query`` locking its rows and skipping those others hold, on PostgreSQL.

    SQLite has no row locks: its writers hold the one database lock in turn,
    which makes such a claim exclusive without this clause.
    """
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True, of=of)
    return query
