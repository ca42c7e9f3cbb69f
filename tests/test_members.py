"""Project members: roles, tenancy, the last-admin rule, events and concurrency."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from palo_api.db.models import OutboxEvent, ProjectMember, Ticket
from tests.conftest import Account, Factory, assert_error


@pytest.fixture
def owner(member_account: Account) -> Account:
    """A plain organization member who creates projects and so admins them."""
    return member_account


@pytest.fixture
def project(client, factory: Factory, owner: Account) -> dict[str, Any]:
    return factory.project(client, owner)


def _members_path(project: dict[str, Any], user_id: Any = None) -> str:
    path = f"/v1/projects/{project['id']}/members"
    return path if user_id is None else f"{path}/{user_id}"


def _join(
    runtime,
    project: dict[str, Any],
    account: Account,
    role: str,
    added_at: datetime | None = None,
) -> None:
    """Make ``account`` a member directly in the database."""
    with runtime.database.write() as session:
        session.add(
            ProjectMember(
                project_id=uuid.UUID(project["id"]),
                user_id=account.user_id,
                role=role,
                added_at=added_at or datetime.now(UTC),
            )
        )
        session.commit()


def _roles(client, project: dict[str, Any], headers: dict[str, str]) -> dict[str, str]:
    """Every member's role by user id, as the list operation shows it."""
    response = client.get(f"{_members_path(project)}?limit=100", headers=headers)
    assert response.status_code == 200, response.text
    return {m["user_id"]: m["role"] for m in response.json()["data"]}


def _invitations(runtime, project: dict[str, Any]) -> list[OutboxEvent]:
    with runtime.database.read() as session:
        return list(
            session.scalars(
                select(OutboxEvent).where(
                    OutboxEvent.project_id == uuid.UUID(project["id"]),
                    OutboxEvent.type == "member.invited",
                )
            )
        )


def _without_request_id(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "request_id"}


# Adding


def test_add_member_by_user_id_defaults_to_member_and_gives_location(
    client, factory: Factory, owner: Account, project: dict[str, Any]
) -> None:
    colleague = factory.account(owner.org_id)

    response = client.post(
        _members_path(project),
        json={"user_id": str(colleague.user_id)},
        headers=owner.headers,
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == (
        f"/v1/projects/{project['id']}/members/{colleague.user_id}"
    )
    assert body["project_id"] == project["id"]
    assert body["user_id"] == str(colleague.user_id)
    assert body["role"] == "member"
    assert body["name"] == "Test User"
    assert body["email"].endswith("@example.com")
    assert body["added_at"].endswith("Z")


def test_add_member_by_email_matches_whatever_the_case(
    client, factory: Factory, owner: Account, project: dict[str, Any]
) -> None:
    colleague = factory.account(owner.org_id)
    email = client.post(
        _members_path(project),
        json={"user_id": str(colleague.user_id), "role": "viewer"},
        headers=owner.headers,
    ).json()["email"]
    client.delete(_members_path(project, colleague.user_id), headers=owner.headers)

    response = client.post(
        _members_path(project),
        json={"email": email.upper(), "role": "admin"},
        headers=owner.headers,
    )

    assert response.status_code == 201, response.text
    assert (response.json()["user_id"], response.json()["role"]) == (
        str(colleague.user_id),
        "admin",
    )


def test_added_member_appears_in_the_project_with_its_project_id(
    client, factory: Factory, owner: Account, project: dict[str, Any]
) -> None:
    colleague = factory.account(owner.org_id)
    client.post(
        _members_path(project),
        json={"user_id": str(colleague.user_id)},
        headers=owner.headers,
    )

    fetched = client.get(f"/v1/projects/{project['id']}", headers=owner.headers)

    members = fetched.json()["members"]
    assert [(m["user_id"], m["role"]) for m in members] == [
        (str(owner.user_id), "admin"),
        (str(colleague.user_id), "member"),
    ]
    assert {m["project_id"] for m in members} == {project["id"]}


@pytest.mark.parametrize("given", [(), ("user_id", "email")], ids=["neither", "both"])
def test_add_member_needs_exactly_one_of_user_id_and_email(
    client, factory: Factory, owner: Account, project: dict[str, Any], given
) -> None:
    colleague = factory.account(owner.org_id)
    identifiers = {"user_id": str(colleague.user_id), "email": "x@example.com"}
    body = {"role": "viewer", **{field: identifiers[field] for field in given}}

    response = client.post(_members_path(project), json=body, headers=owner.headers)

    error = assert_error(response, 422, "validation_failed")
    assert sorted(d["field"] for d in error["details"]) == ["email", "user_id"]
    assert list(_roles(client, project, owner.headers)) == [str(owner.user_id)]


@pytest.mark.parametrize("field", ["user_id", "email"])
def test_user_of_another_org_is_refused_exactly_like_an_unknown_user(
    client, runtime, factory: Factory, owner: Account, project: dict, field: str
) -> None:
    stranger = factory.account()  # a fresh organization
    stranger_email = client.get(
        _members_path(factory.project(client, stranger)), headers=stranger.headers
    ).json()["data"][0]["email"]
    known = {"user_id": str(stranger.user_id), "email": stranger_email}[field]
    unknown = {"user_id": str(uuid.uuid4()), "email": "nobody@example.com"}[field]

    elsewhere = client.post(
        _members_path(project), json={field: known}, headers=owner.headers
    )
    nowhere = client.post(
        _members_path(project), json={field: unknown}, headers=owner.headers
    )

    refused = assert_error(elsewhere, 422, "validation_failed")
    assert _without_request_id(refused) == _without_request_id(nowhere.json())
    assert [d["field"] for d in refused["details"]] == [field]
    assert list(_roles(client, project, owner.headers)) == [str(owner.user_id)]
    assert _invitations(runtime, project) == []


def test_email_with_nul_is_an_unknown_user_not_a_database_error(
    client, owner: Account, project: dict[str, Any]
) -> None:
    response = client.post(
        _members_path(project),
        json={"email": "a\u0000b@example.com"},
        headers=owner.headers,
    )

    error = assert_error(response, 422, "validation_failed")
    assert error["details"] == [
        {"field": "email", "message": "no user of your organization has this email"}
    ]


def test_adding_an_existing_member_answers_409_and_keeps_its_role(
    client, runtime, factory: Factory, owner: Account, project: dict[str, Any]
) -> None:
    colleague = factory.account(owner.org_id)
    _join(runtime, project, colleague, "viewer")

    response = client.post(
        _members_path(project),
        json={"user_id": str(colleague.user_id), "role": "admin"},
        headers=owner.headers,
    )

    assert_error(response, 409, "conflict")
    assert _roles(client, project, owner.headers)[str(colleague.user_id)] == "viewer"


def test_add_member_writes_one_member_invited_event_with_the_member(
    client, runtime, factory: Factory, owner: Account, project: dict[str, Any]
) -> None:
    colleague = factory.account(owner.org_id)

    added = client.post(
        _members_path(project),
        json={"user_id": str(colleague.user_id), "role": "viewer"},
        headers=owner.headers,
    ).json()

    events = _invitations(runtime, project)
    assert len(events) == 1
    assert events[0].payload == added
    assert events[0].org_id == owner.org_id
    assert events[0].dispatched_at is None


def test_failed_adds_write_no_event(
    client, runtime, factory: Factory, owner: Account, project: dict[str, Any]
) -> None:
    colleague = factory.account(owner.org_id)
    viewer = factory.account(owner.org_id)
    _join(runtime, project, viewer, "viewer")
    attempts = [
        ({"user_id": str(owner.user_id)}, owner, 409),  # already a member
        ({"email": "nobody@example.com"}, owner, 422),
        ({"user_id": str(colleague.user_id)}, viewer, 403),
    ]

    statuses = [
        client.post(_members_path(project), json=body, headers=who.headers).status_code
        for body, who, _ in attempts
    ]

    assert statuses == [status for _, _, status in attempts]
    assert _invitations(runtime, project) == []


# Roles and tenancy


@pytest.mark.parametrize("role", ["viewer", "member"])
def test_viewers_and_members_read_the_list_but_cannot_manage_it(
    client, runtime, factory: Factory, owner: Account, project: dict, role: str
) -> None:
    colleague = factory.account(owner.org_id)
    outsider_of_project = factory.account(owner.org_id)
    _join(runtime, project, colleague, role)
    before = _roles(client, project, owner.headers)

    listed = _roles(client, project, colleague.headers)
    add = client.post(
        _members_path(project),
        json={"user_id": str(outsider_of_project.user_id)},
        headers=colleague.headers,
    )
    demote = client.patch(
        _members_path(project, owner.user_id),
        json={"role": "viewer"},
        headers=colleague.headers,
    )
    remove = client.delete(
        _members_path(project, owner.user_id), headers=colleague.headers
    )

    assert (
        listed == before == {str(owner.user_id): "admin", str(colleague.user_id): role}
    )
    for response in (add, demote, remove):
        assert_error(response, 403, "forbidden")
    assert _roles(client, project, owner.headers) == before


@pytest.mark.parametrize("actor", ["project_admin", "org_admin"])
def test_project_admins_and_org_admins_manage_members(
    client,
    runtime,
    factory: Factory,
    owner: Account,
    admin_account: Account,
    project: dict[str, Any],
    actor: str,
) -> None:
    if actor == "project_admin":
        manager = factory.account(owner.org_id)
        _join(runtime, project, manager, "admin")
    else:
        manager = admin_account  # not a member of the project
    colleague = factory.account(owner.org_id)
    path = _members_path(project, colleague.user_id)

    listed = client.get(_members_path(project), headers=manager.headers)
    added = client.post(
        _members_path(project),
        json={"user_id": str(colleague.user_id)},
        headers=manager.headers,
    )
    changed = client.patch(path, json={"role": "viewer"}, headers=manager.headers)
    role_after_change = _roles(client, project, owner.headers)[str(colleague.user_id)]
    removed = client.delete(path, headers=manager.headers)

    assert listed.status_code == 200, listed.text
    assert added.status_code == 201, added.text
    assert changed.status_code == 200, changed.text
    assert changed.json()["role"] == role_after_change == "viewer"
    assert removed.status_code == 204, removed.text
    assert removed.content == b""
    assert str(colleague.user_id) not in _roles(client, project, owner.headers)


def test_org_member_outside_the_project_gets_404_on_every_operation(
    client, factory: Factory, owner: Account, project: dict[str, Any]
) -> None:
    stranger = factory.account(owner.org_id)
    colleague = factory.account(owner.org_id)

    responses = [
        client.get(_members_path(project), headers=stranger.headers),
        client.post(
            _members_path(project),
            json={"user_id": str(colleague.user_id)},
            headers=stranger.headers,
        ),
        client.patch(
            _members_path(project, owner.user_id),
            json={"role": "viewer"},
            headers=stranger.headers,
        ),
        client.delete(_members_path(project, owner.user_id), headers=stranger.headers),
    ]

    for response in responses:
        assert_error(response, 404, "not_found")
    assert _roles(client, project, owner.headers) == {str(owner.user_id): "admin"}


def test_another_organizations_project_is_404_even_for_its_admins(
    client, owner: Account, outsider: Account, project: dict[str, Any]
) -> None:
    responses = [
        client.get(_members_path(project), headers=outsider.headers),
        client.post(
            _members_path(project),
            json={"user_id": str(outsider.user_id)},
            headers=outsider.headers,
        ),
        client.patch(
            _members_path(project, owner.user_id),
            json={"role": "viewer"},
            headers=outsider.headers,
        ),
        client.delete(_members_path(project, owner.user_id), headers=outsider.headers),
    ]

    for response in responses:
        assert_error(response, 404, "not_found")
    assert _roles(client, project, owner.headers) == {str(owner.user_id): "admin"}


def test_unknown_project_is_404(client, owner: Account) -> None:
    response = client.get(f"/v1/projects/{uuid.uuid4()}/members", headers=owner.headers)

    assert_error(response, 404, "not_found")


# Listing


def test_list_members_is_newest_first_and_pages(
    client, runtime, factory: Factory, owner: Account, project: dict[str, Any]
) -> None:
    start = datetime.now(UTC) + timedelta(minutes=1)
    joined = [factory.account(owner.org_id) for _ in range(4)]
    for minutes, account in enumerate(joined):
        _join(runtime, project, account, "member", start + timedelta(minutes=minutes))
    path = _members_path(project)

    first = client.get(f"{path}?limit=2", headers=owner.headers).json()
    second = client.get(f"{path}?limit=2&offset=2", headers=owner.headers).json()
    last = client.get(f"{path}?limit=2&offset=4", headers=owner.headers).json()

    assert set(first) == {"data", "pagination"}
    assert first["pagination"] == {
        "total": 5, "limit": 2, "offset": 0, "has_more": True
    }  # fmt: skip
    assert last["pagination"] == {
        "total": 5, "limit": 2, "offset": 4, "has_more": False
    }  # fmt: skip
    listed = [m["user_id"] for m in first["data"] + second["data"] + last["data"]]
    expected = [str(a.user_id) for a in reversed(joined)] + [str(owner.user_id)]
    assert listed == expected


def test_list_members_breaks_added_at_ties_by_user_id(
    client, runtime, factory: Factory, owner: Account, project: dict[str, Any]
) -> None:
    same_time = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(3):
        _join(runtime, project, factory.account(owner.org_id), "viewer")
    with runtime.database.write() as session:
        session.execute(
            update(ProjectMember)
            .where(ProjectMember.project_id == uuid.UUID(project["id"]))
            .values(added_at=same_time)
        )
        session.commit()

    listed = client.get(_members_path(project), headers=owner.headers).json()["data"]

    ids = [m["user_id"] for m in listed]
    assert len(ids) == 4
    assert ids == sorted(ids, key=uuid.UUID, reverse=True)


def test_list_shows_only_this_projects_members(
    client, runtime, factory: Factory, owner: Account, project: dict[str, Any]
) -> None:
    other_project = factory.project(client, owner)
    colleague = factory.account(owner.org_id)
    _join(runtime, other_project, colleague, "member")

    body = client.get(_members_path(project), headers=owner.headers).json()

    assert [m["user_id"] for m in body["data"]] == [str(owner.user_id)]
    assert body["pagination"]["total"] == 1


# Changing roles


def test_change_role_of_a_non_member_is_404(
    client, factory: Factory, owner: Account, project: dict[str, Any]
) -> None:
    colleague = factory.account(owner.org_id)

    response = client.patch(
        _members_path(project, colleague.user_id),
        json={"role": "admin"},
        headers=owner.headers,
    )

    assert_error(response, 404, "not_found")
    assert str(colleague.user_id) not in _roles(client, project, owner.headers)


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_demoting_the_last_admin_is_409_last_admin_even_for_an_org_admin(
    client, owner: Account, admin_account: Account, project: dict, role: str
) -> None:
    path = _members_path(project, owner.user_id)

    by_self = client.patch(path, json={"role": role}, headers=owner.headers)
    by_org_admin = client.patch(
        path, json={"role": role}, headers=admin_account.headers
    )

    assert_error(by_self, 409, "last_admin")
    assert_error(by_org_admin, 409, "last_admin")
    assert _roles(client, project, owner.headers) == {str(owner.user_id): "admin"}


def test_an_admin_may_step_down_once_another_admin_exists(
    client, runtime, factory: Factory, owner: Account, project: dict[str, Any]
) -> None:
    deputy = factory.account(owner.org_id)
    _join(runtime, project, deputy, "member")
    client.patch(
        _members_path(project, deputy.user_id),
        json={"role": "admin"},
        headers=owner.headers,
    )

    response = client.patch(
        _members_path(project, owner.user_id),
        json={"role": "member"},
        headers=owner.headers,
    )

    assert response.status_code == 200, response.text
    assert _roles(client, project, deputy.headers) == {
        str(owner.user_id): "member",
        str(deputy.user_id): "admin",
    }


def test_giving_the_same_role_answers_200_even_for_the_last_admin(
    client, owner: Account, project: dict[str, Any]
) -> None:
    response = client.patch(
        _members_path(project, owner.user_id),
        json={"role": "admin"},
        headers=owner.headers,
    )

    assert response.status_code == 200, response.text
    assert response.json() == project["members"][0]


@pytest.mark.parametrize("body", [{}, {"role": "owner"}, {"role": "admin", "x": 1}])
def test_change_role_rejects_an_invalid_body(
    client, owner: Account, project: dict[str, Any], body
) -> None:
    response = client.patch(
        _members_path(project, owner.user_id), json=body, headers=owner.headers
    )

    assert_error(response, 422, "validation_failed")


# Removing and leaving


def test_remove_a_non_member_is_404(
    client, factory: Factory, owner: Account, project: dict[str, Any]
) -> None:
    colleague = factory.account(owner.org_id)

    response = client.delete(
        _members_path(project, colleague.user_id), headers=owner.headers
    )

    assert_error(response, 404, "not_found")


def test_removing_the_last_admin_is_409_last_admin(
    client, runtime, factory: Factory, owner: Account, admin_account: Account, project
) -> None:
    colleague = factory.account(owner.org_id)
    _join(runtime, project, colleague, "member")
    path = _members_path(project, owner.user_id)

    leaving = client.delete(path, headers=owner.headers)
    removed_by_org_admin = client.delete(path, headers=admin_account.headers)

    assert_error(leaving, 409, "last_admin")
    assert_error(removed_by_org_admin, 409, "last_admin")
    assert _roles(client, project, owner.headers)[str(owner.user_id)] == "admin"


@pytest.mark.parametrize("role", ["viewer", "member", "admin"])
def test_any_member_may_leave_the_project(
    client, runtime, factory: Factory, owner: Account, project: dict, role: str
) -> None:
    colleague = factory.account(owner.org_id)
    _join(runtime, project, colleague, role)

    response = client.delete(
        _members_path(project, colleague.user_id), headers=colleague.headers
    )

    assert response.status_code == 204, response.text
    assert _roles(client, project, owner.headers) == {str(owner.user_id): "admin"}
    gone = client.get(_members_path(project), headers=colleague.headers)
    assert_error(gone, 404, "not_found")


def test_removed_member_keeps_the_tickets_assigned_to_them(
    client, runtime, factory: Factory, owner: Account, project: dict[str, Any]
) -> None:
    colleague = factory.account(owner.org_id)
    _join(runtime, project, colleague, "member")
    with runtime.database.write() as session:
        ticket = Ticket(
            org_id=owner.org_id,
            project_id=uuid.UUID(project["id"]),
            title="Assigned",
            reporter_id=owner.user_id,
            assignee_id=colleague.user_id,
        )
        session.add(ticket)
        session.commit()

    response = client.delete(
        _members_path(project, colleague.user_id), headers=owner.headers
    )

    assert response.status_code == 204, response.text
    with runtime.database.read() as session:
        assert session.get(Ticket, ticket.id).assignee_id == colleague.user_id


# Archived projects


def test_archived_project_lists_members_but_refuses_changes(
    client, runtime, factory: Factory, owner: Account, project: dict[str, Any]
) -> None:
    colleague = factory.account(owner.org_id)
    newcomer = factory.account(owner.org_id)
    _join(runtime, project, colleague, "member")
    client.delete(f"/v1/projects/{project['id']}", headers=owner.headers)
    path = _members_path(project, colleague.user_id)

    listed = client.get(_members_path(project), headers=owner.headers)
    responses = [
        client.post(
            _members_path(project),
            json={"user_id": str(newcomer.user_id)},
            headers=owner.headers,
        ),
        client.patch(path, json={"role": "viewer"}, headers=owner.headers),
        client.delete(path, headers=owner.headers),
        client.delete(path, headers=colleague.headers),  # leaving changes it too
    ]

    assert listed.status_code == 200, listed.text
    assert listed.json()["pagination"]["total"] == 2
    for response in responses:
        assert_error(response, 409, "project_archived")
    assert _roles(client, project, owner.headers) == {
        str(owner.user_id): "admin",
        str(colleague.user_id): "member",
    }
    assert _invitations(runtime, project) == []


# Concurrency


def _race(client, requests: list[tuple[str, str, Account, Any]]) -> list[Any]:
    """Send every request at the same moment; the responses in the same order."""
    responses: list[Any] = [None] * len(requests)
    start = threading.Barrier(len(requests))

    def send(index: int) -> None:
        method, path, account, body = requests[index]
        start.wait()
        responses[index] = client.request(
            method, path, json=body, headers=account.headers
        )

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


def _admins(runtime, project: dict[str, Any]) -> int:
    with runtime.database.read() as session:
        count = session.scalar(
            select(func.count()).where(
                ProjectMember.project_id == uuid.UUID(project["id"]),
                ProjectMember.role == "admin",
            )
        )
    return count or 0


def test_two_admins_stepping_down_at_once_leave_one_admin(
    client, runtime, factory: Factory, owner: Account
) -> None:
    for _ in range(8):
        project = factory.project(client, owner)
        deputy = factory.account(owner.org_id)
        _join(runtime, project, deputy, "admin")

        responses = _race(
            client,
            [
                ("PATCH", _members_path(project, a.user_id), a, {"role": "member"})
                for a in (owner, deputy)
            ],
        )

        assert sorted(r.status_code for r in responses) == [200, 409]
        assert_error(
            next(r for r in responses if r.status_code == 409), 409, "last_admin"
        )
        assert _admins(runtime, project) == 1


def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    client, runtime, factory: Factory, owner: Account
) -> None:
    for _ in range(8):
        project = factory.project(client, owner)
        deputy = factory.account(owner.org_id)
        _join(runtime, project, deputy, "admin")

        responses = _race(
            client,
            [
                (
                    "PATCH",
                    _members_path(project, deputy.user_id),
                    owner,
                    {"role": "member"},
                ),
                (
                    "PATCH",
                    _members_path(project, owner.user_id),
                    deputy,
                    {"role": "member"},
                ),
            ],
        )

        # Whoever goes second is no longer an admin, so may not change roles.
        assert sorted(r.status_code for r in responses) == [200, 403]
        winner = owner if responses[0].status_code == 200 else deputy
        assert _roles(client, project, owner.headers)[str(winner.user_id)] == "admin"
        assert _admins(runtime, project) == 1


def test_two_admins_leaving_at_once_leave_one_admin(
    client, runtime, factory: Factory, owner: Account
) -> None:
    for _ in range(8):
        project = factory.project(client, owner)
        deputy = factory.account(owner.org_id)
        _join(runtime, project, deputy, "admin")

        responses = _race(
            client,
            [
                ("DELETE", _members_path(project, a.user_id), a, None)
                for a in (owner, deputy)
            ],
        )

        assert sorted(r.status_code for r in responses) == [204, 409]
        assert _admins(runtime, project) == 1
