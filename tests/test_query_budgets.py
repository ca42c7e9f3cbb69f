"""SQL statements per request: each operation has a fixed budget.

A change that adds a statement to an operation (a lazy load in a loop, a
second lookup of the caller) fails here, on SQLite and PostgreSQL alike. The
budgets count what reaches the database driver, from the token's check to
the commit, except transaction control (SQLite's explicit ``BEGIN``), which
the other driver sends implicitly. Lists cost the same whatever their length,
and a ticket the same whatever its comments and history.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from tests.conftest import Account, Factory

# What each operation may send; raising one is a decision, not an accident.
BUDGETS = {
    "list_tickets": 3,  # caller, the projects seen (or not), page with its count
    "list_project_tickets": 2,  # caller, page with its count (checks the project)
    "get_ticket": 4,  # caller, ticket, comments, history
    "create_ticket": 6,  # caller, project, members, ticket, history, outbox
    "update_ticket": 7,  # caller, ticket, project, members, history, outbox, update
    "list_projects": 5,  # caller, count, page, members, ticket counts
}
TRANSACTION_CONTROL = re.compile(
    r"\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)\b", re.IGNORECASE
)


@contextmanager
def statements() -> Iterator[list[str]]:
    """The statements every engine of the process sends inside the block.

    The block holds one request and nothing else, so they are the app's.
    """
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not TRANSACTION_CONTROL.match(statement):
            sent.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def _counted(client: Any, method: str, path: str, account: Account, **kw: Any) -> int:
    with statements() as sent:
        response = client.request(method, path, headers=account.headers, **kw)
    assert response.status_code < 300, response.text
    return len(sent)


@pytest.fixture
def project(client: Any, factory: Factory, member_account: Account) -> dict[str, Any]:
    """A project of ``member_account`` with two more members."""
    created = factory.project(client, member_account)
    for role in ("member", "viewer"):
        other = factory.account(member_account.org_id)
        factory.add_member(created["id"], other, role)
    return created


def _tickets(client: Any, factory: Factory, account: Account, project: Any, n: int):
    return [factory.ticket(client, account, project["id"]) for _ in range(n)]


def _comment(client: Any, account: Account, ticket_id: str) -> None:
    response = client.post(
        f"/v1/tickets/{ticket_id}/comments",
        json={"body": f"Seen again, @{account.user_id}."},
        headers=account.headers,
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("tickets", [1, 6])
def test_ticket_list_stays_within_its_budget_whatever_its_length(
    client: Any,
    factory: Factory,
    admin_account: Account,
    member_account: Account,
    project: dict[str, Any],
    tickets: int,
) -> None:
    _tickets(client, factory, member_account, project, tickets)

    for caller in (member_account, admin_account):
        for query, budget in (
            (f"?project_id={project['id']}&status=open", "list_project_tickets"),
            ("?priority=p3&limit=100", "list_tickets"),
        ):
            sent = _counted(client, "GET", f"/v1/tickets{query}", caller)
            assert sent == BUDGETS[budget], query


@pytest.mark.parametrize("comments", [0, 5])
def test_ticket_detail_stays_within_its_budget_whatever_its_comments(
    client: Any,
    factory: Factory,
    member_account: Account,
    project: dict[str, Any],
    comments: int,
) -> None:
    (ticket,) = _tickets(client, factory, member_account, project, 1)
    for _ in range(comments):
        _comment(client, member_account, ticket["id"])
    for n in range(comments):
        client.patch(
            f"/v1/tickets/{ticket['id']}",
            json={"title": f"Renamed {n}"},
            headers=member_account.headers,
        )

    sent = _counted(client, "GET", f"/v1/tickets/{ticket['id']}", member_account)

    assert sent == BUDGETS["get_ticket"]


def test_ticket_creation_stays_within_its_budget(
    client: Any, member_account: Account, project: dict[str, Any]
) -> None:
    body = {
        "project_id": project["id"],
        "title": "Export fails",
        "assignee_id": str(member_account.user_id),
    }

    sent = _counted(client, "POST", "/v1/tickets", member_account, json=body)

    assert sent == BUDGETS["create_ticket"]


def test_ticket_update_stays_within_its_budget(
    client: Any, factory: Factory, member_account: Account, project: dict[str, Any]
) -> None:
    (ticket,) = _tickets(client, factory, member_account, project, 1)
    body = {"status": "resolved", "assignee_id": str(member_account.user_id)}

    path = f"/v1/tickets/{ticket['id']}"
    sent = _counted(client, "PATCH", path, member_account, json=body)

    assert sent == BUDGETS["update_ticket"]


@pytest.mark.parametrize("projects", [1, 4])
def test_project_list_stays_within_its_budget_whatever_its_length(
    client: Any, factory: Factory, admin_account: Account, projects: int
) -> None:
    for _ in range(projects):
        created = factory.project(client, admin_account)
        other = factory.account(admin_account.org_id)
        factory.add_member(created["id"], other, "member")
        factory.ticket(client, admin_account, created["id"])

    sent = _counted(client, "GET", "/v1/projects", admin_account)

    assert sent == BUDGETS["list_projects"]
