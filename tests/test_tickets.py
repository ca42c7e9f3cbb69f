"""Tickets: creation rules, every list filter, updates and their history."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from palo_api.db.models import AuditEvent, OutboxEvent, Ticket
from tests.conftest import Account, Factory, assert_error


@pytest.fixture
def project(client, factory: Factory, member_account: Account) -> dict[str, Any]:
    """An active project whose admin is ``member_account``."""
    return factory.project(client, member_account)


def _history(client, account: Account, ticket_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/tickets/{ticket_id}", headers=account.headers)
    assert response.status_code == 200, response.text
    history: list[dict[str, Any]] = response.json()["history"]
    return history


def _outbox(runtime, ticket_id: str) -> list[str]:
    with runtime.database.read() as session:
        events = session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.type.like("ticket.%"))
            .order_by(OutboxEvent.created_at)
        ).all()
    return [e.type for e in events if e.payload["id"] == ticket_id]


# --- creation -----------------------------------------------------------------


def test_create_ticket_applies_defaults(
    client, member_account: Account, project: dict[str, Any]
) -> None:
    response = client.post(
        "/v1/tickets",
        json={"title": "  Login fails  ", "project_id": project["id"]},
        headers=member_account.headers,
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/tickets/{body['id']}"
    assert body["title"] == "Login fails"
    assert body["status"] == "open"
    assert body["priority"] == "p3"
    assert body["description"] is None
    assert body["assignee_id"] is None
    assert body["resolved_at"] is None
    assert body["reporter_id"] == str(member_account.user_id)
    assert body["project_id"] == project["id"]
    assert body["created_at"] == body["updated_at"]


def test_create_ticket_records_history_and_event_in_its_transaction(
    client, runtime, member_account: Account, project: dict[str, Any]
) -> None:
    response = client.post(
        "/v1/tickets",
        json={
            "title": "Crash",
            "description": "On *start*",
            "priority": "p1",
            "assignee_id": str(member_account.user_id),
            "project_id": project["id"],
        },
        headers=member_account.headers,
    )
    ticket = response.json()

    [event] = _history(client, member_account, ticket["id"])
    assert event["action"] == "ticket.created"
    assert event["actor_id"] == str(member_account.user_id)
    assert event["request_id"] == response.headers["x-request-id"]
    assert event["comment_id"] is None
    assert event["created_at"] == ticket["created_at"]
    assert event["changes"] == [
        {"field": "title", "from": None, "to": "Crash"},
        {"field": "description", "from": None, "to": "On *start*"},
        {"field": "status", "from": None, "to": "open"},
        {"field": "priority", "from": None, "to": "p1"},
        {"field": "assignee_id", "from": None, "to": str(member_account.user_id)},
    ]
    assert _outbox(runtime, ticket["id"]) == ["ticket.created"]


def test_create_ticket_refuses_an_assignee_outside_the_project(
    client, factory: Factory, member_account: Account, project: dict[str, Any]
) -> None:
    colleague = factory.account(member_account.org_id)  # same org, not a member
    stranger = factory.account()  # another organization

    for assignee in (colleague.user_id, stranger.user_id, uuid.uuid4()):
        response = client.post(
            "/v1/tickets",
            json={
                "title": "T",
                "project_id": project["id"],
                "assignee_id": str(assignee),
            },
            headers=member_account.headers,
        )
        body = assert_error(response, 422, "validation_failed")
        assert body["details"] == [
            {"field": "assignee_id", "message": "must be a member of the project"}
        ]


def test_create_ticket_in_a_project_the_caller_cannot_see_is_a_field_error(
    client, factory: Factory, member_account: Account, outsider: Account
) -> None:
    foreign = factory.project(client, outsider)
    colleague = factory.account(member_account.org_id)
    unshared = factory.project(client, colleague)

    messages = set()
    for project_id in (foreign["id"], unshared["id"], str(uuid.uuid4())):
        response = client.post(
            "/v1/tickets",
            json={"title": "T", "project_id": project_id},
            headers=member_account.headers,
        )
        body = assert_error(response, 422, "validation_failed")
        assert [d["field"] for d in body["details"]] == ["project_id"]
        messages.add((body["message"], body["details"][0]["message"]))
    assert len(messages) == 1  # existence does not leak


def test_viewer_cannot_create_tickets(
    client, factory: Factory, member_account: Account, project: dict[str, Any]
) -> None:
    viewer = factory.account(member_account.org_id)
    factory.add_member(project["id"], viewer, "viewer")

    response = client.post(
        "/v1/tickets",
        json={"title": "T", "project_id": project["id"]},
        headers=viewer.headers,
    )

    assert_error(response, 403, "forbidden")


def test_org_admin_creates_tickets_in_any_project_of_the_org(
    client, factory: Factory, admin_account: Account, member_account: Account
) -> None:
    project = factory.project(client, member_account)

    ticket = factory.ticket(client, admin_account, project["id"])

    assert ticket["reporter_id"] == str(admin_account.user_id)


def test_archived_project_takes_no_new_tickets(
    client, member_account: Account, project: dict[str, Any]
) -> None:
    client.delete(f"/v1/projects/{project['id']}", headers=member_account.headers)

    response = client.post(
        "/v1/tickets",
        json={"title": "T", "project_id": project["id"]},
        headers=member_account.headers,
    )

    assert_error(response, 422, "project_archived")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "   "}, "title"),
        ({"title": ""}, "title"),
        ({"title": "x" * 501}, "title"),
        ({"title": "T", "priority": "p5"}, "priority"),
        ({"title": "T", "status": "closed"}, "status"),
        ({"title": "T", "assignee_id": "nope"}, "assignee_id"),
        ({"project_id": None}, "title"),
    ],
)
def test_create_ticket_validates_the_body(
    client, member_account: Account, project: dict[str, Any], body, field
) -> None:
    response = client.post(
        "/v1/tickets",
        json={"project_id": project["id"], **body},
        headers=member_account.headers,
    )

    details = assert_error(response, 422, "validation_failed")["details"]
    assert field in {d["field"] for d in details}


# --- reading --------------------------------------------------------------------


def test_get_ticket_of_another_org_or_unshared_project_is_404(
    client, factory: Factory, member_account: Account, outsider: Account
) -> None:
    foreign_project = factory.project(client, outsider)
    foreign = factory.ticket(client, outsider, foreign_project["id"])
    colleague = factory.account(member_account.org_id)
    unshared = factory.ticket(
        client, colleague, factory.project(client, colleague)["id"]
    )

    for ticket in (foreign, unshared):
        response = client.get(
            f"/v1/tickets/{ticket['id']}", headers=member_account.headers
        )
        assert_error(response, 404, "not_found")
        response = client.patch(
            f"/v1/tickets/{ticket['id']}",
            json={"title": "mine"},
            headers=member_account.headers,
        )
        assert_error(response, 404, "not_found")


def test_viewer_reads_tickets_but_cannot_change_them(
    client, factory: Factory, member_account: Account, project: dict[str, Any]
) -> None:
    ticket = factory.ticket(client, member_account, project["id"])
    viewer = factory.account(member_account.org_id)
    factory.add_member(project["id"], viewer, "viewer")

    assert client.get(f"/v1/tickets/{ticket['id']}", headers=viewer.headers).is_success
    listed = client.get(
        "/v1/tickets", params={"project_id": project["id"]}, headers=viewer.headers
    )
    assert [t["id"] for t in listed.json()["data"]] == [ticket["id"]]
    response = client.patch(
        f"/v1/tickets/{ticket['id']}", json={"status": "closed"}, headers=viewer.headers
    )
    assert_error(response, 403, "forbidden")


# --- the list and its filters -----------------------------------------------------


@pytest.fixture
def landscape(client, runtime, factory: Factory, outsider: Account) -> dict[str, Any]:
    """Tickets where every filter matters, with known creation times.

    Two projects of one org; tickets varying one attribute at a time from a
    base ticket; one ticket a microsecond either side of the date range; and
    a ticket of another organization that matches every filter.
    """
    owner = factory.account(org_role="member")
    assignee = factory.account(owner.org_id)
    main = factory.project(client, owner)
    other = factory.project(client, owner)
    factory.add_member(main["id"], assignee, "member")
    factory.add_member(other["id"], assignee, "member")
    start = datetime(2026, 3, 1, tzinfo=UTC)
    end = datetime(2026, 3, 31, tzinfo=UTC)

    def make(name: str, project: dict[str, Any], at: datetime, **fields: Any) -> str:
        ticket = factory.ticket(client, owner, project["id"], title=name, **fields)
        with runtime.database.write() as session:
            session.execute(
                update(Ticket)
                .where(Ticket.id == uuid.UUID(ticket["id"]))
                .values(created_at=at)
            )
            session.commit()
        return name

    base = {"priority": "p1", "assignee_id": str(assignee.user_id)}
    inside = start + timedelta(days=10)
    make("match", main, inside, **base)
    make("other project", other, inside + timedelta(hours=1), **base)
    make("other priority", main, inside + timedelta(hours=2), priority="p2",
         assignee_id=base["assignee_id"])  # fmt: skip
    make("unassigned", main, inside + timedelta(hours=3), priority="p1")
    make("at start", main, start, **base)
    make("just before start", main, start - timedelta(microseconds=1), **base)
    make("just before end", main, end - timedelta(microseconds=1), **base)
    make("at end", main, end, **base)
    resolved = make("resolved", main, inside + timedelta(hours=4), **base)
    ticket_id = _title_to_id(client, owner, main["id"], resolved)
    client.patch(
        f"/v1/tickets/{ticket_id}", json={"status": "resolved"}, headers=owner.headers
    )
    foreign_project = factory.project(client, outsider)
    factory.ticket(client, outsider, foreign_project["id"], priority="p1")

    return {
        "owner": owner,
        "main": main["id"],
        "other": other["id"],
        "assignee": str(assignee.user_id),
        "start": start.isoformat().replace("+00:00", "Z"),
        "end": end.isoformat().replace("+00:00", "Z"),
    }


def _title_to_id(client, account: Account, project_id: str, title: str) -> str:
    listed = client.get(
        "/v1/tickets",
        params={"project_id": project_id, "limit": 100},
        headers=account.headers,
    )
    return next(t["id"] for t in listed.json()["data"] if t["title"] == title)


def _titles(client, account: Account, **params: Any) -> list[str]:
    response = client.get(
        "/v1/tickets", params={"limit": 100, **params}, headers=account.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["pagination"]["total"] == len(body["data"])
    return [t["title"] for t in body["data"]]


ALL = [
    "at end", "just before end", "resolved", "unassigned", "other priority",
    "other project", "match", "at start", "just before start",
]  # fmt: skip


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ALL),
        ({"project_id": "main"}, [t for t in ALL if t != "other project"]),
        ({"project_id": "other"}, ["other project"]),
        ({"status": "resolved"}, ["resolved"]),
        ({"status": "open"}, [t for t in ALL if t != "resolved"]),
        ({"status": "closed"}, []),
        ({"priority": "p2"}, ["other priority"]),
        ({"priority": "p1"}, [t for t in ALL if t != "other priority"]),
        ({"assignee_id": "assignee"}, [t for t in ALL if t != "unassigned"]),
        (
            {"created_after": "start"},
            [t for t in ALL if t != "just before start"],
        ),
        ({"created_before": "end"}, [t for t in ALL if t != "at end"]),
        (
            {"created_after": "start", "created_before": "end"},
            [t for t in ALL if t not in ("at end", "just before start")],
        ),
        (
            {
                "project_id": "main",
                "status": "open",
                "priority": "p1",
                "assignee_id": "assignee",
                "created_after": "start",
                "created_before": "end",
            },
            ["just before end", "match", "at start"],
        ),
        ({"project_id": "other", "priority": "p2"}, []),
        ({"assignee_id": "owner"}, []),
    ],
    ids=lambda value: "-".join(value) if isinstance(value, dict) else None,
)
def test_list_filters_alone_and_combined(
    client, landscape: dict[str, Any], params: dict[str, str], expected: list[str]
) -> None:
    owner: Account = landscape["owner"]
    values = {**landscape, "owner": str(owner.user_id)}
    resolved = {key: values.get(name, name) for key, name in params.items()}

    assert _titles(client, owner, **resolved) == expected


def test_list_accepts_times_with_offsets(client, landscape: dict[str, Any]) -> None:
    owner: Account = landscape["owner"]

    # 2026-03-01T01:00+01:00 is the range's start, written in another zone.
    titles = _titles(client, owner, created_after="2026-03-01T01:00:00+01:00")

    assert "at start" in titles
    assert "just before start" not in titles


@pytest.mark.parametrize(
    "bound",
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-03-01t00:00:00z"],
)
def test_list_takes_extreme_or_lower_case_times(
    client, member_account: Account, bound: str
) -> None:
    for name in ("created_after", "created_before"):
        response = client.get(
            "/v1/tickets", params={name: bound}, headers=member_account.headers
        )
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("created_after", "2026-03-01"),
        ("created_after", "2026-03-01T00:00:00"),
        ("created_before", "yesterday"),
        ("created_before", "2026-12-31T23:59:60Z"),
        ("status", "done"),
        ("priority", "P1"),
        ("project_id", "not-a-uuid"),
        ("assignee_id", "123"),
        ("sort", "created_at"),
    ],
)
def test_list_refuses_bad_filters(client, member_account: Account, name, value) -> None:
    response = client.get(
        "/v1/tickets", params={name: value}, headers=member_account.headers
    )

    assert_error(response, 400, "invalid_parameter")


def test_list_shows_only_projects_the_caller_belongs_to(
    client, factory: Factory, admin_account: Account, member_account: Account
) -> None:
    mine = factory.project(client, member_account)
    colleague = factory.account(admin_account.org_id)
    theirs = factory.project(client, colleague)
    factory.ticket(client, member_account, mine["id"], title="mine")
    factory.ticket(client, colleague, theirs["id"], title="theirs")

    assert _titles(client, member_account) == ["mine"]
    assert _titles(client, member_account, project_id=theirs["id"]) == []
    assert sorted(_titles(client, admin_account)) == ["mine", "theirs"]


def test_archived_projects_tickets_leave_the_default_list_but_stay_readable(
    client, factory: Factory, member_account: Account, project: dict[str, Any]
) -> None:
    ticket = factory.ticket(client, member_account, project["id"], title="kept")
    client.delete(f"/v1/projects/{project['id']}", headers=member_account.headers)

    assert _titles(client, member_account) == []
    assert _titles(client, member_account, project_id=project["id"]) == ["kept"]
    got = client.get(f"/v1/tickets/{ticket['id']}", headers=member_account.headers)
    assert got.status_code == 200
    response = client.patch(
        f"/v1/tickets/{ticket['id']}",
        json={"status": "closed"},
        headers=member_account.headers,
    )
    assert_error(response, 422, "project_archived")


def test_purge_due_project_tickets_disappear(
    client, runtime, factory: Factory, member_account: Account, project: dict[str, Any]
) -> None:
    from palo_api.db.models import Project

    ticket = factory.ticket(client, member_account, project["id"])
    client.delete(f"/v1/projects/{project['id']}", headers=member_account.headers)
    with runtime.database.write() as session:
        session.execute(
            update(Project)
            .where(Project.id == uuid.UUID(project["id"]))
            .values(purge_after=datetime.now(UTC) - timedelta(seconds=1))
        )
        session.commit()

    response = client.get(f"/v1/tickets/{ticket['id']}", headers=member_account.headers)
    assert_error(response, 404, "not_found")
    assert _titles(client, member_account, project_id=project["id"]) == []


def test_pages_follow_a_stable_order_even_for_equal_times(
    client, runtime, factory: Factory, member_account: Account, project: dict[str, Any]
) -> None:
    ids = [
        factory.ticket(client, member_account, project["id"])["id"] for _ in range(7)
    ]
    same = datetime(2026, 5, 5, tzinfo=UTC)
    with runtime.database.write() as session:
        session.execute(
            update(Ticket)
            .where(Ticket.id.in_([uuid.UUID(i) for i in ids]))
            .values(created_at=same)
        )
        session.commit()

    seen = []
    for offset in range(0, 7, 3):
        response = client.get(
            "/v1/tickets",
            params={"project_id": project["id"], "limit": 3, "offset": offset},
            headers=member_account.headers,
        )
        page = response.json()
        assert page["pagination"] == {
            "total": 7, "limit": 3, "offset": offset, "has_more": offset + 3 < 7
        }  # fmt: skip
        seen += [t["id"] for t in page["data"]]

    assert seen == sorted(ids, key=uuid.UUID, reverse=True)


# --- updates and history ------------------------------------------------------------


def test_patch_several_fields_is_one_history_event(
    client, runtime, factory: Factory, member_account: Account, project: dict[str, Any]
) -> None:
    assignee = factory.account(member_account.org_id)
    factory.add_member(project["id"], assignee, "member")
    ticket = factory.ticket(client, member_account, project["id"], title="Old")

    response = client.patch(
        f"/v1/tickets/{ticket['id']}",
        json={
            "assignee_id": str(assignee.user_id),
            "title": "New",
            "priority": "p3",  # unchanged: not recorded
            "status": "in_progress",
        },
        headers=member_account.headers,
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["updated_at"] > ticket["updated_at"]
    created, updated = _history(client, member_account, ticket["id"])
    assert created["action"] == "ticket.created"
    assert updated["action"] == "ticket.updated"
    assert updated["request_id"] == response.headers["x-request-id"]
    assert updated["created_at"] == body["updated_at"]
    assert updated["changes"] == [
        {"field": "title", "from": "Old", "to": "New"},
        {"field": "status", "from": "open", "to": "in_progress"},
        {"field": "assignee_id", "from": None, "to": str(assignee.user_id)},
    ]
    assert _outbox(runtime, ticket["id"]) == ["ticket.created", "ticket.updated"]


def test_patch_that_changes_nothing_records_nothing(
    client, runtime, factory: Factory, member_account: Account, project: dict[str, Any]
) -> None:
    ticket = factory.ticket(
        client, member_account, project["id"], title="Same", priority="p2"
    )

    response = client.patch(
        f"/v1/tickets/{ticket['id']}",
        json={"title": "  Same ", "priority": "p2", "assignee_id": None},
        headers=member_account.headers,
    )

    assert response.status_code == 200, response.text
    assert response.json() == ticket
    assert [e["action"] for e in _history(client, member_account, ticket["id"])] == [
        "ticket.created"
    ]
    assert _outbox(runtime, ticket["id"]) == ["ticket.created"]


def test_resolving_sets_resolved_at_and_emits_resolved(
    client, runtime, factory: Factory, member_account: Account, project: dict[str, Any]
) -> None:
    ticket = factory.ticket(client, member_account, project["id"])
    url = f"/v1/tickets/{ticket['id']}"

    resolved = client.patch(
        url, json={"status": "resolved"}, headers=member_account.headers
    )
    reopened = client.patch(
        url, json={"status": "open"}, headers=member_account.headers
    )
    again = client.patch(
        url, json={"status": "resolved"}, headers=member_account.headers
    )

    assert resolved.json()["resolved_at"] == resolved.json()["updated_at"]
    assert reopened.json()["resolved_at"] == resolved.json()["resolved_at"]
    assert again.json()["resolved_at"] == again.json()["updated_at"]
    assert again.json()["resolved_at"] > resolved.json()["resolved_at"]
    assert _outbox(runtime, ticket["id"]) == [
        "ticket.created",
        "ticket.updated", "ticket.resolved",
        "ticket.updated",
        "ticket.updated", "ticket.resolved",
    ]  # fmt: skip


def test_patch_unassigns_with_null_and_checks_membership(
    client, factory: Factory, member_account: Account, project: dict[str, Any]
) -> None:
    ticket = factory.ticket(
        client, member_account, project["id"], assignee_id=str(member_account.user_id)
    )
    outsider_of_project = factory.account(member_account.org_id)
    url = f"/v1/tickets/{ticket['id']}"

    refused = client.patch(
        url,
        json={"assignee_id": str(outsider_of_project.user_id), "title": "x"},
        headers=member_account.headers,
    )
    unassigned = client.patch(
        url, json={"assignee_id": None}, headers=member_account.headers
    )

    body = assert_error(refused, 422, "validation_failed")
    assert body["details"][0]["field"] == "assignee_id"
    assert unassigned.json()["assignee_id"] is None
    assert (
        unassigned.json()["title"] == ticket["title"]
    )  # the refused PATCH kept nothing


@pytest.mark.parametrize(
    "body",
    [{}, {"project_id": str(uuid.uuid4())}, {"resolved_at": None}, {"title": None},
     {"status": "done"}, {"reporter_id": str(uuid.uuid4())}],
)  # fmt: skip
def test_patch_validates_the_body(
    client, factory: Factory, member_account: Account, project: dict[str, Any], body
) -> None:
    ticket = factory.ticket(client, member_account, project["id"])

    response = client.patch(
        f"/v1/tickets/{ticket['id']}", json=body, headers=member_account.headers
    )

    assert_error(response, 422, "validation_failed")


def test_history_after_create_patch_noop_and_comment_is_exact(
    client, factory: Factory, member_account: Account, project: dict[str, Any]
) -> None:
    created = client.post(
        "/v1/tickets",
        json={"title": "Broken", "project_id": project["id"]},
        headers=member_account.headers,
    )
    url = f"/v1/tickets/{created.json()['id']}"
    patched = client.patch(
        url,
        json={"priority": "p1", "description": "Steps"},
        headers=member_account.headers,
    )
    noop = client.patch(url, json={"priority": "p1"}, headers=member_account.headers)
    commented = client.post(
        f"{url}/comments", json={"body": "Looking"}, headers=member_account.headers
    )
    assert noop.status_code == 200
    assert commented.status_code == 201, commented.text

    history = _history(client, member_account, created.json()["id"])

    actor = str(member_account.user_id)
    assert [
        (e["action"], e["actor_id"], e["request_id"], e["comment_id"], e["changes"])
        for e in history
    ] == [
        ("ticket.created", actor, created.headers["x-request-id"], None, [
            {"field": "title", "from": None, "to": "Broken"},
            {"field": "status", "from": None, "to": "open"},
            {"field": "priority", "from": None, "to": "p3"},
        ]),
        ("ticket.updated", actor, patched.headers["x-request-id"], None, [
            {"field": "description", "from": None, "to": "Steps"},
            {"field": "priority", "from": "p3", "to": "p1"},
        ]),
        ("comment.created", actor, commented.headers["x-request-id"],
         commented.json()["id"], []),
    ]  # fmt: skip
    assert history[2]["created_at"] == commented.json()["created_at"]


def test_concurrent_patches_leave_a_consistent_history(
    client, factory: Factory, member_account: Account, project: dict[str, Any]
) -> None:
    ticket = factory.ticket(client, member_account, project["id"])
    url = f"/v1/tickets/{ticket['id']}"
    statuses = ["in_progress", "resolved", "closed", "open"] * 4
    barrier = threading.Barrier(len(statuses))
    codes: list[int] = []

    def patch(status: str) -> None:
        barrier.wait()
        response = client.patch(
            url, json={"status": status}, headers=member_account.headers
        )
        codes.append(response.status_code)

    threads = [threading.Thread(target=patch, args=(s,)) for s in statuses]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert codes == [200] * len(statuses)
    history = _history(client, member_account, ticket["id"])
    status = "open"
    for event in history[1:]:
        [change] = event["changes"]
        assert change["from"] == status  # each change starts where the last ended
        status = change["to"]
    final = client.get(url, headers=member_account.headers).json()
    assert final["status"] == status


def test_history_cannot_be_rewritten_in_the_database(
    client, runtime, factory: Factory, member_account: Account, project: dict[str, Any]
) -> None:
    from sqlalchemy.exc import DatabaseError

    ticket = factory.ticket(client, member_account, project["id"])
    ticket_id = uuid.UUID(ticket["id"])

    for statement in (
        update(AuditEvent).where(AuditEvent.ticket_id == ticket_id).values(action="x"),
        AuditEvent.__table__.delete().where(AuditEvent.ticket_id == ticket_id),
    ):
        with runtime.database.write() as session, pytest.raises(DatabaseError):
            session.execute(statement)
    assert len(_history(client, member_account, ticket["id"])) == 1


def _listed(client, account: Account, **params: Any) -> list[dict[str, Any]]:
    response = client.get(
        "/v1/tickets", params={"limit": 100, **params}, headers=account.headers
    )
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def test_a_listed_ticket_has_the_body_of_the_ticket_itself(
    client, factory: Factory, admin_account: Account, member_account: Account
) -> None:
    """Lists read rows of columns, not ORM objects: the bodies must not differ."""
    project = factory.project(client, member_account)
    archived = factory.project(client, admin_account)
    client.delete(f"/v1/projects/{archived['id']}", headers=admin_account.headers)
    ticket = factory.ticket(
        client,
        member_account,
        project["id"],
        description="**every** field set",
        priority="p3",
        assignee_id=str(member_account.user_id),
    )
    patched = client.patch(
        f"/v1/tickets/{ticket['id']}",
        json={"status": "resolved"},
        headers=member_account.headers,
    )
    assert patched.status_code == 200, patched.text
    detail = client.get(f"/v1/tickets/{ticket['id']}", headers=member_account.headers)
    expected = {
        key: value
        for key, value in detail.json().items()
        if key not in ("comments", "history")
    }
    assert all(value is not None for value in expected.values())

    # Each way a list reaches its tickets: a named project, the projects a
    # member belongs to, an org admin's whole organization but the archived.
    for account, params in [
        (member_account, {"project_id": project["id"]}),
        (member_account, {}),
        (admin_account, {}),
        (admin_account, {"project_id": project["id"], "status": "resolved"}),
    ]:
        assert _listed(client, account, **params) == [expected]


def test_lists_built_once_answer_each_caller_with_its_own_values(
    client, factory: Factory
) -> None:
    """The list's statements are kept per filter shape; values never are."""
    first_org, second_org = factory.org(), factory.org()
    first_admin = factory.account(first_org, org_role="admin")
    first_member = factory.account(first_org)
    second_admin = factory.account(second_org, org_role="admin")
    first = factory.project(client, first_admin)
    second = factory.project(client, second_admin)
    factory.ticket(client, first_admin, first["id"], title="first")
    factory.ticket(client, second_admin, second["id"], title="second")

    for _ in range(2):
        for account, params, titles in [
            (first_admin, {"status": "open"}, ["first"]),
            (second_admin, {"status": "open"}, ["second"]),
            (first_member, {"status": "open"}, []),
            (first_admin, {"project_id": first["id"]}, ["first"]),
            (second_admin, {"project_id": first["id"]}, []),
            (first_member, {"project_id": first["id"]}, []),
            (second_admin, {"project_id": second["id"]}, ["second"]),
        ]:
            assert [t["title"] for t in _listed(client, account, **params)] == titles
            total = client.get(
                "/v1/tickets", params=params, headers=account.headers
            ).json()["pagination"]["total"]
            assert total == len(titles)


@pytest.mark.parametrize("scope", ["project", "member", "admin"])
def test_a_page_past_the_end_still_gives_the_total(
    client,
    factory: Factory,
    admin_account: Account,
    member_account: Account,
    scope: str,
) -> None:
    """The total rides on the page's rows; a page without rows counts apart."""
    project = factory.project(client, member_account)
    for _ in range(3):
        factory.ticket(client, member_account, project["id"], priority="p4")
    account = admin_account if scope == "admin" else member_account
    params: dict[str, Any] = {"priority": "p4", "limit": 2}
    if scope == "project":
        params["project_id"] = project["id"]
    expected = len(_listed(client, account, **params | {"limit": 100}))
    assert expected >= 3

    for offset, items in [(0, 2), (2, expected - 2), (expected, 0), (500, 0)]:
        response = client.get(
            "/v1/tickets", params=params | {"offset": offset}, headers=account.headers
        )
        body = response.json()
        assert len(body["data"]) == min(items, 2)
        assert body["pagination"]["total"] == expected
    nothing = client.get(
        "/v1/tickets",
        params=params | {"created_after": "9999-01-01T00:00:00Z"},
        headers=account.headers,
    )
    assert nothing.json()["pagination"]["total"] == 0
