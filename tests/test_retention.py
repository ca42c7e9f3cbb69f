"""The retention purge: due projects go for good, in batches, counted exactly."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from palo_api.cli import cli
from palo_api.db import engine as engine_module
from palo_api.db.engine import Database
from palo_api.db.models import (
    AuditEvent,
    Comment,
    DeliveryAttempt,
    Project,
    ProjectMember,
    Ticket,
    User,
    Webhook,
    WebhookDelivery,
)
from palo_api.db.types import utcnow
from palo_api.runtime import Runtime
from palo_api.services import retention
from palo_api.services.retention import PurgeCounts, purge
from tests.conftest import TEST_SIGNING_KEYS, Account, Factory, assert_error

COMMENTS_PER_TICKET = 2
EVENTS_PER_TICKET = 3
WEBHOOK_SECRET = "whsec_" + "s" * 32
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Tree:
    """A project built for a test, its owner, and what purging it must count."""

    id: uuid.UUID
    owner: Account
    expected: PurgeCounts

    @property
    def path(self) -> str:
        return f"/v1/projects/{self.id}"


class Builder:
    """Builds projects with rows under them, archived or due as a test needs."""

    def __init__(self, client: Any, runtime: Runtime, factory: Factory) -> None:
        self.client = client
        self.runtime = runtime
        self.factory = factory

    def project(
        self, owner: Account, *, tickets: int, members: int = 1, webhooks: int = 1
    ) -> Tree:
        """A project with tickets, comments, history, members and webhooks."""
        project_id = uuid.UUID(self.factory.project(self.client, owner)["id"])
        with self.runtime.database.write() as session:
            _add_members(session, owner, project_id, members)
            _add_webhooks(session, owner, project_id, webhooks)
            _add_tickets(session, owner, project_id, tickets)
            session.commit()
        expected = PurgeCounts(
            projects=1,
            tickets=tickets,
            comments=tickets * COMMENTS_PER_TICKET,
            audit_events=tickets * EVENTS_PER_TICKET,
            members=1 + members,  # the creator, then the others
            webhooks=webhooks,
        )
        return Tree(id=project_id, owner=owner, expected=expected)

    def archived(self, owner: Account, **rows: int) -> Tree:
        """A project archived through the API: due in 90 days."""
        tree = self.project(owner, **rows)
        response = self.client.delete(tree.path, headers=owner.headers)
        assert response.status_code == 204, response.text
        return tree

    def due(self, owner: Account, **rows: int) -> Tree:
        """An archived project whose purge date has passed."""
        tree = self.archived(owner, **rows)
        self.set_purge_after(tree, LONG_AGO)
        return tree

    def many_due(
        self, owner: Account, *, projects: int, tickets: int
    ) -> tuple[list[Tree], PurgeCounts]:
        """Several due projects and what purging them all must count."""
        trees = [self.due(owner, tickets=tickets) for _ in range(projects)]
        return trees, sum((tree.expected for tree in trees), PurgeCounts())

    def set_purge_after(self, tree: Tree, when: datetime) -> None:
        with self.runtime.database.write() as session:
            session.execute(
                update(Project).where(Project.id == tree.id).values(purge_after=when)
            )
            session.commit()

    def get(self, tree: Tree) -> Any:
        """The project as its owner reads it through the API."""
        return self.client.get(tree.path, headers=tree.owner.headers)


@pytest.fixture
def build(client: Any, runtime: Runtime, factory: Factory) -> Builder:
    return Builder(client, runtime, factory)


@pytest.fixture(autouse=True)
def nothing_else_due(runtime: Runtime) -> None:
    """Purge what earlier tests left archived, so counts are this test's alone."""
    purge(database=runtime.database, as_of=utcnow() + timedelta(days=3650))


def _add_members(session: Any, owner: Account, project_id: uuid.UUID, n: int) -> None:
    for _ in range(n):
        user = User(
            org_id=owner.org_id,
            email=f"{uuid.uuid4().hex}@example.com",
            name="Member",
            org_role="member",
        )
        session.add(user)
        session.flush()
        session.add(
            ProjectMember(project_id=project_id, user_id=user.id, role="viewer")
        )


def _add_webhooks(session: Any, owner: Account, project_id: uuid.UUID, n: int) -> None:
    for _ in range(n):
        webhook = Webhook(
            org_id=owner.org_id,
            project_id=project_id,
            url="https://example.com/hook",
            events=["ticket.created"],
            secret=WEBHOOK_SECRET,
            created_by=owner.user_id,
        )
        session.add(webhook)
        session.flush()
        delivery = WebhookDelivery(
            webhook_id=webhook.id,
            event_id=uuid.uuid4(),
            event_type="ticket.created",
            payload={},
        )
        session.add(delivery)
        session.flush()
        session.add(DeliveryAttempt(delivery_id=delivery.id, duration_ms=5))


def _add_tickets(session: Any, owner: Account, project_id: uuid.UUID, n: int) -> None:
    ticket_ids = [uuid.uuid4() for _ in range(n)]
    if not ticket_ids:
        return
    session.execute(
        insert(Ticket),
        [
            {
                "id": ticket_id,
                "org_id": owner.org_id,
                "project_id": project_id,
                "title": f"Ticket {index}",
                "reporter_id": owner.user_id,
            }
            for index, ticket_id in enumerate(ticket_ids)
        ],
    )
    session.execute(
        insert(Comment),
        [
            {
                "ticket_id": ticket_id,
                "author_id": owner.user_id,
                "body": "hello",
                "body_html": "<p>hello</p>",
            }
            for ticket_id in ticket_ids
            for _ in range(COMMENTS_PER_TICKET)
        ],
    )
    session.execute(
        insert(AuditEvent),
        [
            {
                "org_id": owner.org_id,
                "ticket_id": ticket_id,
                "actor_id": owner.user_id,
                "action": "ticket.updated",
            }
            for ticket_id in ticket_ids
            for _ in range(EVENTS_PER_TICKET)
        ],
    )


def _rows(runtime: Runtime, tree: Tree) -> dict[str, int]:
    """What still exists of a project, by kind."""
    tickets = select(Ticket.id).where(Ticket.project_id == tree.id)
    webhooks = select(Webhook.id).where(Webhook.project_id == tree.id)
    deliveries = select(WebhookDelivery.id).where(
        WebhookDelivery.webhook_id.in_(webhooks)
    )
    counted = {
        "projects": select(func.count()).where(Project.id == tree.id),
        "tickets": select(func.count()).select_from(tickets.subquery()),
        "comments": select(func.count()).where(Comment.ticket_id.in_(tickets)),
        "audit_events": select(func.count()).where(AuditEvent.ticket_id.in_(tickets)),
        "members": select(func.count()).where(ProjectMember.project_id == tree.id),
        "webhooks": select(func.count()).select_from(webhooks.subquery()),
        "deliveries": select(func.count()).select_from(deliveries.subquery()),
        "attempts": select(func.count()).where(
            DeliveryAttempt.delivery_id.in_(deliveries)
        ),
    }
    with runtime.database.read() as session:
        return {kind: session.scalar(query) or 0 for kind, query in counted.items()}


def _whole(tree: Tree) -> dict[str, int]:
    """What ``_rows`` finds of a project that nothing has touched."""
    return {
        **tree.expected.as_dict(),
        "deliveries": tree.expected.webhooks,
        "attempts": tree.expected.webhooks,
    }


NOTHING = dict.fromkeys(
    (*PurgeCounts().as_dict(), "deliveries", "attempts"),
    0,
)


def test_purge_deletes_a_due_project_with_everything_under_it(
    build: Builder, runtime: Runtime, admin_account: Account
) -> None:
    tree = build.due(admin_account, tickets=3, members=2, webhooks=2)
    assert _rows(runtime, tree) == _whole(tree)

    counts = purge(database=runtime.database, as_of=utcnow())

    assert counts == PurgeCounts(
        projects=1, tickets=3, comments=6, audit_events=9, members=3, webhooks=2
    )
    assert _rows(runtime, tree) == NOTHING
    assert_error(build.get(tree), 404, "not_found")


def test_purge_leaves_projects_that_are_not_due_untouched(
    build: Builder, runtime: Runtime, admin_account: Account, outsider: Account
) -> None:
    due = build.due(admin_account, tickets=2)
    kept = [
        build.archived(admin_account, tickets=2),
        build.project(admin_account, tickets=2),
        build.project(outsider, tickets=2),
        build.archived(outsider, tickets=2),
    ]
    before = [build.get(tree).json() for tree in kept]

    counts = purge(database=runtime.database, as_of=utcnow())

    assert counts == due.expected
    assert _rows(runtime, due) == NOTHING
    assert [_rows(runtime, tree) for tree in kept] == [_whole(tree) for tree in kept]
    assert [build.get(tree).json() for tree in kept] == before


def test_batches_smaller_than_a_project_still_purge_all_of_it_exactly(
    build: Builder, runtime: Runtime, admin_account: Account, caplog
) -> None:
    big = build.due(admin_account, tickets=7, webhooks=2)
    exact = build.due(admin_account, tickets=6)
    empty = build.due(admin_account, tickets=0)

    with caplog.at_level(logging.INFO, logger=retention.__name__):
        counts = purge(database=runtime.database, as_of=utcnow(), batch_size=3)

    assert counts == big.expected + exact.expected + empty.expected
    for tree in (big, exact, empty):
        assert _rows(runtime, tree) == NOTHING
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert (
        f"project {big.id} purged; this run deleted 7 tickets, 14 comments, "
        "21 audit events, 2 members, 2 webhooks" in logged
    )
    assert len([message for message in logged if " purged; " in message]) == 3
    assert WEBHOOK_SECRET not in caplog.text


def test_future_as_of_hides_the_project_before_deleting_any_of_it(
    build: Builder, runtime: Runtime, admin_account: Account, monkeypatch
) -> None:
    soon = build.archived(admin_account, tickets=3)
    later = build.archived(admin_account, tickets=1)
    build.set_purge_after(later, utcnow() + timedelta(days=200))
    later_before = build.get(later).json()
    assert build.get(soon).status_code == 200
    seen: list[tuple[int, int, int]] = []
    run_batch = retention._purge_batch

    def watched_batch(**kwargs: Any) -> Any:
        """Run a batch, then try to restore and read the project as a user."""
        batch = run_batch(**kwargs)
        restore = build.client.patch(
            soon.path, json={"status": "active"}, headers=admin_account.headers
        )
        shown = build.get(soon).status_code
        seen.append((shown, restore.status_code, _rows(runtime, soon)["tickets"]))
        return batch

    monkeypatch.setattr(retention, "_purge_batch", watched_batch)

    counts = purge(
        database=runtime.database, as_of=utcnow() + timedelta(days=91), batch_size=1
    )

    assert counts == soon.expected
    assert seen[0] == (404, 404, 3)  # hidden first, nothing deleted yet
    assert {(shown, restore) for shown, restore, _ in seen} == {(404, 404)}
    assert _rows(runtime, soon) == NOTHING
    assert _rows(runtime, later) == _whole(later)
    assert build.get(later).json() == later_before


def test_purge_refuses_a_naive_as_of_and_a_batch_size_below_one(
    runtime: Runtime,
) -> None:
    with pytest.raises(ValueError, match="timezone"):
        purge(database=runtime.database, as_of=datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="batch_size"):
        purge(database=runtime.database, as_of=utcnow(), batch_size=0)


def test_concurrent_purges_share_the_work_and_count_it_exactly(
    build: Builder, runtime: Runtime, admin_account: Account, database_url: str
) -> None:
    trees, expected = build.many_due(admin_account, projects=6, tickets=20)
    runs = 4
    start = threading.Barrier(runs)
    results: list[PurgeCounts] = []
    failures: list[BaseException] = []

    def run() -> None:
        database = Database(database_url)
        try:
            start.wait()
            results.append(purge(database=database, as_of=utcnow(), batch_size=2))
        except BaseException as exc:
            failures.append(exc)
        finally:
            database.dispose()

    threads = [threading.Thread(target=run) for _ in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert sum(results, PurgeCounts()) == expected
    assert sum(1 for counts in results if counts.tickets) >= 2  # they overlapped
    assert [_rows(runtime, tree) for tree in trees] == [NOTHING] * len(trees)


def _purge_while_held(
    runtime: Runtime, database_url: str, held: Tree, *, hold: float, wait: float
) -> PurgeCounts:
    """Purge in a thread while another transaction holds ``held`` for ``hold`` s."""
    results: list[PurgeCounts] = []

    def run() -> None:
        database = Database(database_url)
        try:
            results.append(purge(database=database, as_of=utcnow(), wait_seconds=wait))
        finally:
            database.dispose()

    worker = threading.Thread(target=run)
    with runtime.database.write() as holder:
        # As a user's request holds it, between reading and committing.
        holder.execute(select(Project).where(Project.id == held.id).with_for_update())
        worker.start()
        worker.join(timeout=hold)
        holder.rollback()
    worker.join(timeout=30)
    assert not worker.is_alive()
    [counts] = results
    return counts


def test_purge_does_the_free_projects_first_and_reports_one_held_too_long(
    build: Builder, runtime: Runtime, admin_account: Account, database_url: str
) -> None:
    if runtime.database.is_sqlite:
        pytest.skip("SQLite locks the whole file; there is no row lock to skip")
    held = build.due(admin_account, tickets=2)
    free = build.due(admin_account, tickets=2)

    counts = _purge_while_held(runtime, database_url, held, hold=5, wait=0.5)

    assert counts == replace(free.expected, still_due=1)
    assert _rows(runtime, free) == NOTHING
    assert _rows(runtime, held) == _whole(held)
    assert purge(database=runtime.database, as_of=utcnow()) == held.expected


def test_purge_waits_for_a_project_held_briefly_and_purges_it(
    build: Builder, runtime: Runtime, admin_account: Account, database_url: str
) -> None:
    if runtime.database.is_sqlite:
        pytest.skip("SQLite locks the whole file; there is no row lock to skip")
    held = build.due(admin_account, tickets=2)
    free = build.due(admin_account, tickets=2)

    counts = _purge_while_held(runtime, database_url, held, hold=1, wait=10)

    assert counts == free.expected + held.expected
    assert _rows(runtime, held) == NOTHING


def test_a_comment_added_while_the_purge_runs_is_counted(
    build: Builder, runtime: Runtime, admin_account: Account, database_url: str
) -> None:
    tree = build.due(admin_account, tickets=1)
    with runtime.database.read() as session:
        ticket_id = session.scalar(
            select(Ticket.id).where(Ticket.project_id == tree.id)
        )
    results: list[PurgeCounts] = []

    def run() -> None:
        database = Database(database_url)
        try:
            results.append(purge(database=database, as_of=utcnow()))
        finally:
            database.dispose()

    worker = threading.Thread(target=run)
    with runtime.database.write() as writer:
        writer.add(
            Comment(
                ticket_id=ticket_id,
                author_id=admin_account.user_id,
                body="late",
                body_html="<p>late</p>",
            )
        )
        writer.flush()
        worker.start()
        worker.join(timeout=1)  # the purge now waits for this transaction
        writer.commit()
    worker.join()

    assert results == [tree.expected + PurgeCounts(comments=1)]
    assert _rows(runtime, tree) == NOTHING


def _start_palo_purge(database_url: str, *args: str) -> subprocess.Popen[str]:
    """A real ``palo purge`` process on the test database."""
    env = {
        **os.environ,
        "PALO_DATABASE_URL": database_url,
        "PALO_SIGNING_KEYS": TEST_SIGNING_KEYS,
        "PALO_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("palo")), "purge", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_other_writers_get_turns_while_a_long_purge_runs(
    build: Builder,
    admin_account: Account,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tickets, batch_size = 3000, 100
    big = build.due(admin_account, tickets=tickets)
    other = build.project(admin_account, tickets=0)
    # Short enough that a writer SQLite's lock never lets in fails within
    # the test; the server waits ten seconds.
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 1000)
    writing = Database(database_url)
    left = select(func.count()).where(Ticket.project_id == big.id)
    failures: list[BaseException] = []
    # Tickets left when each write went in: which pauses between batches it used.
    gaps_used: set[int] = set()

    process = _start_palo_purge(database_url, "--batch-size", str(batch_size))
    try:
        while process.poll() is None:
            try:
                with writing.write() as session:
                    session.execute(
                        update(Project)
                        .where(Project.id == other.id)
                        .values(description=str(uuid.uuid4()))
                    )
                    remaining = session.scalar(left) or 0
                    session.commit()
            except OperationalError as exc:
                failures.append(exc)
            else:
                gaps_used.add(remaining)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        writing.dispose()

    assert process.returncode == 0, stderr
    assert failures == []
    # A purge that took SQLite's lock back at once lets writers in between
    # half of its batches at best; pausing lets them in between nearly all on
    # an idle machine, and still well over half on a loaded one (22 of 29 seen).
    gaps = tickets // batch_size - 1
    assert len(gaps_used & set(range(1, tickets))) > gaps * 3 // 5
    assert json.loads(stdout) | {"as_of": None} == {
        "as_of": None,
        **big.expected.as_dict(),
        "still_due": 0,
    }


def test_two_palo_purge_processes_share_the_work_and_count_it_exactly(
    build: Builder, runtime: Runtime, admin_account: Account, database_url: str
) -> None:
    trees, expected = build.many_due(admin_account, projects=6, tickets=60)
    processes = [_start_palo_purge(database_url, "--batch-size", "2") for _ in range(2)]
    outputs = [process.communicate(timeout=120) for process in processes]

    assert [process.returncode for process in processes] == [0, 0], outputs
    printed = [json.loads(stdout) for stdout, _ in outputs]
    total = {
        kind: sum(counts[kind] for counts in printed) for kind in expected.as_dict()
    }
    assert total == expected.as_dict()
    assert all(counts["tickets"] for counts in printed)  # they overlapped
    assert [_rows(runtime, tree) for tree in trees] == [NOTHING] * len(trees)


@pytest.fixture
def palo(monkeypatch: pytest.MonkeyPatch, database_url: str):
    """Run ``palo purge`` with arguments in this process."""
    monkeypatch.setenv("PALO_DATABASE_URL", database_url)
    monkeypatch.setenv("PALO_SIGNING_KEYS", TEST_SIGNING_KEYS)
    monkeypatch.setenv("PALO_LOG_LEVEL", "WARNING")
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, ["purge", *args])

    return run


def test_palo_purge_prints_what_it_deleted_as_one_json_object(
    palo, build: Builder, runtime: Runtime, admin_account: Account
) -> None:
    tree = build.due(admin_account, tickets=4)
    before = utcnow()

    result = palo("--batch-size", "3")

    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert list(printed) == [
        "as_of", "projects", "tickets", "comments", "audit_events", "members",
        "webhooks", "still_due",
    ]  # fmt: skip
    assert printed["as_of"].endswith("Z")
    assert before <= datetime.fromisoformat(printed["as_of"]) <= utcnow()
    assert printed == {
        "as_of": printed["as_of"],
        **tree.expected.as_dict(),
        "still_due": 0,
    }
    assert _rows(runtime, tree) == NOTHING


def test_palo_purge_as_of_in_the_future_purges_what_will_be_due(
    palo, build: Builder, runtime: Runtime, admin_account: Account
) -> None:
    tree = build.archived(admin_account, tickets=1)
    as_of = (utcnow() + timedelta(days=91)).replace(microsecond=0)
    assert build.get(tree).status_code == 200

    result = palo("--as-of", as_of.astimezone(timezone(timedelta(hours=2))).isoformat())

    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["as_of"] == as_of.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    assert printed["projects"] == 1
    assert _rows(runtime, tree) == NOTHING
    assert_error(build.get(tree), 404, "not_found")


@pytest.mark.parametrize("wait", ["nan", "-1", "inf", "soon"])
def test_palo_purge_refuses_a_wait_that_is_not_a_bounded_number(
    palo, build: Builder, runtime: Runtime, admin_account: Account, wait: str
) -> None:
    tree = build.due(admin_account, tickets=1)

    result = palo("--wait", wait)

    assert result.exit_code == 2, result.output
    assert "--wait" in result.stderr
    assert _rows(runtime, tree) == _whole(tree)


def test_palo_purge_refuses_an_as_of_beyond_the_calendar_in_utc(
    palo, build: Builder, runtime: Runtime, admin_account: Account
) -> None:
    tree = build.due(admin_account, tickets=1)

    for as_of in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        result = palo("--as-of", as_of)
        assert result.exit_code == 2, result.output
        assert "--as-of" in result.stderr
        assert "outside the years" in result.stderr
        assert "Traceback" not in result.output
    assert _rows(runtime, tree) == _whole(tree)


@pytest.mark.parametrize(
    "as_of",
    [
        "2027-01-31T00:00:00",
        "2027-01-31",
        "2027-01-31 00:00:00+00:00",
        "2027-13-01T00:00:00Z",
        "2016-12-31T23:59:60Z",
        "tomorrow",
        "",
    ],
)
def test_palo_purge_refuses_an_as_of_without_timezone_or_malformed(
    palo, build: Builder, runtime: Runtime, admin_account: Account, as_of: str
) -> None:
    tree = build.due(admin_account, tickets=1)

    result = palo("--as-of", as_of)

    assert result.exit_code != 0
    assert result.stdout == ""
    assert "--as-of" in result.stderr
    assert "RFC 3339" in result.stderr
    assert _rows(runtime, tree) == _whole(tree)


def test_palo_purge_on_an_unmigrated_database_says_to_upgrade(
    palo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PALO_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")

    result = palo()

    assert result.exit_code != 0
    assert result.stdout == ""
    assert "palo db upgrade" in result.stderr
    assert isinstance(result.exception, SystemExit)


def test_palo_purge_on_an_unreachable_database_says_so(
    palo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "PALO_DATABASE_URL", "postgresql://palo:hunter2@127.0.0.1:1/nowhere"
    )

    result = palo()

    assert result.exit_code != 0
    assert result.stdout == ""
    assert "Cannot reach the database" in result.stderr
    assert "hunter2" not in result.stderr


def _ticket_with_history(build: Builder, owner: Account) -> tuple[uuid.UUID, uuid.UUID]:
    """A ticket with comments and history, and one of its audit events."""
    tree = build.project(owner, tickets=1, members=0, webhooks=0)
    with build.runtime.database.read() as session:
        ticket_id = session.scalar(
            select(Ticket.id).where(Ticket.project_id == tree.id)
        )
        event_id = session.scalar(
            select(AuditEvent.id).where(AuditEvent.ticket_id == ticket_id).limit(1)
        )
    assert ticket_id is not None
    assert event_id is not None
    return ticket_id, event_id


def _history(runtime: Runtime, ticket_id: uuid.UUID) -> tuple[int, int]:
    """How many audit events and comments a ticket has."""
    with runtime.database.read() as session:
        events = session.scalar(
            select(func.count()).where(AuditEvent.ticket_id == ticket_id)
        )
        comments = session.scalar(
            select(func.count()).where(Comment.ticket_id == ticket_id)
        )
    return events or 0, comments or 0


WHOLE_HISTORY = (EVENTS_PER_TICKET, COMMENTS_PER_TICKET)


def test_database_refuses_to_update_a_history_row(
    build: Builder, runtime: Runtime, admin_account: Account
) -> None:
    _, event_id = _ticket_with_history(build, admin_account)

    with (
        runtime.database.write() as session,
        pytest.raises(IntegrityError, match="append-only"),
    ):
        session.execute(
            update(AuditEvent)
            .where(AuditEvent.id == event_id)
            .values(action="ticket.forged")
        )

    with runtime.database.read() as session:
        event = session.get(AuditEvent, event_id)
        assert event is not None
        assert event.action == "ticket.updated"


def test_database_refuses_to_delete_a_history_row_while_its_ticket_exists(
    build: Builder, runtime: Runtime, admin_account: Account
) -> None:
    ticket_id, event_id = _ticket_with_history(build, admin_account)

    with (
        runtime.database.write() as session,
        pytest.raises(IntegrityError, match="append-only"),
    ):
        session.execute(delete(AuditEvent).where(AuditEvent.id == event_id))

    assert _history(runtime, ticket_id) == WHOLE_HISTORY


def test_deleting_a_ticket_takes_its_history_and_comments_with_it(
    build: Builder, runtime: Runtime, admin_account: Account
) -> None:
    ticket_id, _ = _ticket_with_history(build, admin_account)
    assert _history(runtime, ticket_id) == WHOLE_HISTORY

    with runtime.database.write() as session:
        session.execute(delete(Ticket).where(Ticket.id == ticket_id))
        session.commit()

    assert _history(runtime, ticket_id) == (0, 0)


def test_restore_judges_retention_by_the_clock_after_the_lock(
    client, runtime, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from palo_api.services import projects as projects_service

    owner = factory.account()
    project = factory.project(client, owner)
    client.delete(f"/v1/projects/{project['id']}", headers=owner.headers)
    now = datetime.now(UTC)
    with runtime.database.write() as session:
        session.execute(
            update(Project)
            .where(Project.id == uuid.UUID(project["id"]))
            .values(purge_after=now - timedelta(seconds=1))
        )
        session.commit()
    # The first reading of the clock happened before a purge pulled
    # purge_after down; the reading after the lock is the present.
    clock = iter([now - timedelta(hours=1)])
    monkeypatch.setattr(
        projects_service, "utcnow", lambda: next(clock, datetime.now(UTC))
    )

    response = client.patch(
        f"/v1/projects/{project['id']}",
        json={"status": "active"},
        headers=owner.headers,
    )

    assert_error(response, 404, "not_found")
