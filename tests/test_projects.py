"""Projects: creation, visibility by organization and role, updates, archiving."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from palo_api.db.models import OutboxEvent, Project, ProjectMember
from palo_api.services.projects import MAX_SETTINGS_BYTES
from tests.conftest import Account, Factory, assert_error


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def test_create_project_applies_defaults_and_makes_creator_admin(
    client, member_account: Account
) -> None:
    response = client.post(
        "/v1/projects", json={"name": "  Mobile app  "}, headers=member_account.headers
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/projects/{body['id']}"
    assert body["name"] == "Mobile app"
    assert body["template"] == "custom"
    assert body["status"] == "active"
    assert body["description"] is None
    assert body["settings"] == {}
    assert body["created_by"] == str(member_account.user_id)
    assert body["archived_at"] is None
    assert body["purge_after"] is None
    assert body["ticket_counts"] == {
        "open": 0, "in_progress": 0, "resolved": 0, "closed": 0, "total": 0
    }  # fmt: skip
    assert [(m["user_id"], m["role"]) for m in body["members"]] == [
        (str(member_account.user_id), "admin")
    ]
    assert body["created_at"].endswith("Z")


def test_create_project_writes_project_created_event_in_same_transaction(
    client, runtime, member_account: Account, factory: Factory
) -> None:
    project = factory.project(client, member_account, template="software")

    with runtime.database.read() as session:
        events = session.scalars(
            select(OutboxEvent).where(
                OutboxEvent.project_id == uuid.UUID(project["id"])
            )
        ).all()
    assert [e.type for e in events] == ["project.created"]
    assert events[0].payload["id"] == project["id"]
    assert events[0].payload["template"] == "software"


def _settings_of(size: int) -> dict[str, str]:
    """Settings whose compact JSON is exactly ``size`` bytes."""
    overhead = len(json.dumps({"k": ""}, separators=(",", ":")))
    return {"k": "é" * ((size - overhead) // 2) + "x" * ((size - overhead) % 2)}


def test_settings_up_to_the_cap_are_kept(client, member_account: Account) -> None:
    settings = _settings_of(MAX_SETTINGS_BYTES)

    created = client.post(
        "/v1/projects",
        json={"name": "Full", "settings": settings},
        headers=member_account.headers,
    )

    assert created.status_code == 201, created.text
    assert created.json()["settings"] == settings


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_settings_over_the_cap_answer_422_and_change_nothing(
    client, member_account: Account, factory: Factory, method: str
) -> None:
    project = factory.project(client, member_account)
    body = {"name": "Big", "settings": _settings_of(MAX_SETTINGS_BYTES + 1)}
    url = "/v1/projects" if method == "POST" else f"/v1/projects/{project['id']}"

    response = client.request(method, url, json=body, headers=member_account.headers)

    error = assert_error(response, 422, "validation_failed")
    assert [d["field"] for d in error["details"]] == ["settings"]
    listed = client.get("/v1/projects", headers=member_account.headers).json()
    assert [(p["name"], p["settings"]) for p in listed["data"]] == [
        (project["name"], project["settings"])
    ]


def test_create_project_keeps_any_json_in_settings(
    client, member_account: Account
) -> None:
    settings = {"k\u0000ey": "va\u0000lue", "nested": {"list": [1, 2.5, None, True]}}

    created = client.post(
        "/v1/projects",
        json={"name": "Settings", "settings": settings},
        headers=member_account.headers,
    )
    fetched = client.get(
        f"/v1/projects/{created.json()['id']}", headers=member_account.headers
    )

    assert created.status_code == 201, created.text
    assert fetched.json()["settings"] == settings


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "a\u0000b"}, "name"),
        ({"name": "ok", "description": "a\u0000b"}, "description"),
        ({"name": "ok", "template": "kanban"}, "template"),
        ({"name": "ok", "owner": "me"}, "owner"),
        ({"name": 12}, "name"),
        ({"name": "ok", "settings": [1]}, "settings"),
    ],
)
def test_create_project_rejects_invalid_body_with_field_details(
    client, member_account: Account, body, field
) -> None:
    response = client.post("/v1/projects", json=body, headers=member_account.headers)

    error = assert_error(response, 422, "validation_failed")
    assert field in [detail["field"] for detail in error["details"]]


def test_list_projects_uses_envelope_newest_first_and_pages(
    client, factory: Factory, member_account: Account
) -> None:
    created = [factory.project(client, member_account)["id"] for _ in range(5)]

    first = client.get("/v1/projects?limit=2", headers=member_account.headers).json()
    rest = client.get(
        "/v1/projects?limit=2&offset=2", headers=member_account.headers
    ).json()
    last = client.get(
        "/v1/projects?limit=2&offset=4", headers=member_account.headers
    ).json()

    assert set(first) == {"data", "pagination"}
    assert first["pagination"] == {
        "total": 5,
        "limit": 2,
        "offset": 0,
        "has_more": True,
    }
    assert last["pagination"] == {
        "total": 5,
        "limit": 2,
        "offset": 4,
        "has_more": False,
    }
    listed = [p["id"] for p in first["data"] + rest["data"] + last["data"]]
    assert listed == list(reversed(created))


def test_list_projects_breaks_created_at_ties_by_id(
    client, runtime, factory: Factory, member_account: Account
) -> None:
    ids = [factory.project(client, member_account)["id"] for _ in range(3)]
    same_time = datetime(2026, 1, 1, tzinfo=datetime.now().astimezone().tzinfo)
    with runtime.database.write() as session:
        session.execute(
            update(Project)
            .where(Project.id.in_([uuid.UUID(i) for i in ids]))
            .values(created_at=same_time)
        )
        session.commit()

    listed = client.get("/v1/projects", headers=member_account.headers).json()["data"]

    assert [p["id"] for p in listed] == sorted(ids, reverse=True)


def test_list_projects_defaults_to_active_and_filters_archived(
    client, factory: Factory, member_account: Account
) -> None:
    kept = factory.project(client, member_account)
    archived = factory.project(client, member_account)
    client.delete(f"/v1/projects/{archived['id']}", headers=member_account.headers)

    active = client.get("/v1/projects", headers=member_account.headers).json()
    only_archived = client.get(
        "/v1/projects?status=archived", headers=member_account.headers
    ).json()

    assert [p["id"] for p in active["data"]] == [kept["id"]]
    assert [p["id"] for p in only_archived["data"]] == [archived["id"]]
    assert only_archived["data"][0]["status"] == "archived"


def test_projects_of_another_organization_are_invisible(
    client, factory: Factory, member_account: Account, outsider: Account
) -> None:
    project = factory.project(client, member_account)
    path = f"/v1/projects/{project['id']}"

    listed = client.get("/v1/projects", headers=outsider.headers).json()

    assert listed["pagination"]["total"] == 0
    assert_error(client.get(path, headers=outsider.headers), 404, "not_found")
    assert_error(
        client.patch(path, json={"name": "x"}, headers=outsider.headers),
        404,
        "not_found",
    )
    assert_error(client.delete(path, headers=outsider.headers), 404, "not_found")


def test_non_member_of_same_org_gets_404_but_org_admin_sees_all(
    client, factory: Factory, admin_account: Account, member_account: Account
) -> None:
    other_member = factory.account(admin_account.org_id)
    project = factory.project(client, member_account)
    path = f"/v1/projects/{project['id']}"

    assert_error(client.get(path, headers=other_member.headers), 404, "not_found")
    assert client.get(path, headers=admin_account.headers).status_code == 200
    admin_list = client.get("/v1/projects", headers=admin_account.headers).json()
    assert project["id"] in [p["id"] for p in admin_list["data"]]
    other_list = client.get("/v1/projects", headers=other_member.headers).json()
    assert other_list["data"] == []


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_project_members_below_admin_cannot_change_or_archive(
    client, runtime, factory: Factory, member_account: Account, role: str
) -> None:
    project = factory.project(client, member_account)
    colleague = factory.account(member_account.org_id)
    with runtime.database.write() as session:
        session.add(
            ProjectMember(
                project_id=uuid.UUID(project["id"]),
                user_id=colleague.user_id,
                role=role,
            )
        )
        session.commit()
    path = f"/v1/projects/{project['id']}"

    assert client.get(path, headers=colleague.headers).status_code == 200
    assert_error(
        client.patch(path, json={"name": "x"}, headers=colleague.headers),
        403,
        "forbidden",
    )
    assert_error(client.delete(path, headers=colleague.headers), 403, "forbidden")
    assert client.get(path, headers=colleague.headers).json()["name"] == project["name"]


def test_patch_changes_only_given_fields_and_bumps_updated_at(
    client, factory: Factory, member_account: Account
) -> None:
    project = factory.project(client, member_account, description="old")
    path = f"/v1/projects/{project['id']}"

    response = client.patch(
        path,
        json={"name": "Renamed", "settings": {"color": "blue"}},
        headers=member_account.headers,
    )

    body = response.json()
    assert response.status_code == 200, response.text
    assert body["name"] == "Renamed"
    assert body["settings"] == {"color": "blue"}
    assert body["description"] == "old"
    assert _parse(body["updated_at"]) > _parse(project["updated_at"])


def test_patch_with_nothing_new_keeps_updated_at(
    client, factory: Factory, member_account: Account
) -> None:
    project = factory.project(client, member_account, description="same")
    path = f"/v1/projects/{project['id']}"

    body = client.patch(
        path, json={"description": "same"}, headers=member_account.headers
    ).json()

    assert body["updated_at"] == project["updated_at"]


def test_patch_null_description_clears_it(
    client, factory: Factory, member_account: Account
) -> None:
    project = factory.project(client, member_account, description="text")

    body = client.patch(
        f"/v1/projects/{project['id']}",
        json={"description": None},
        headers=member_account.headers,
    ).json()

    assert body["description"] is None


def test_archive_sets_purge_after_90_days_and_is_idempotent(
    client, factory: Factory, member_account: Account
) -> None:
    project = factory.project(client, member_account)
    path = f"/v1/projects/{project['id']}"

    first = client.delete(path, headers=member_account.headers)
    archived = client.get(path, headers=member_account.headers).json()
    second = client.delete(path, headers=member_account.headers)
    again = client.get(path, headers=member_account.headers).json()

    assert first.status_code == 204
    assert first.content == b""
    assert "content-type" not in first.headers
    assert second.status_code == 204
    assert archived["status"] == "archived"
    retention = _parse(archived["purge_after"]) - _parse(archived["archived_at"])
    assert retention == timedelta(days=90)
    assert again["archived_at"] == archived["archived_at"]


def test_archived_project_is_read_only_until_restored(
    client, factory: Factory, member_account: Account
) -> None:
    project = factory.project(client, member_account)
    path = f"/v1/projects/{project['id']}"
    client.delete(path, headers=member_account.headers)

    refused = client.patch(path, json={"name": "x"}, headers=member_account.headers)
    restored = client.patch(
        path, json={"status": "active", "name": "Back"}, headers=member_account.headers
    )

    assert_error(refused, 409, "project_archived")
    body = restored.json()
    assert restored.status_code == 200, restored.text
    assert (body["status"], body["name"]) == ("active", "Back")
    assert body["archived_at"] is None
    assert body["purge_after"] is None


def test_archiving_an_archived_project_by_patch_changes_nothing(
    client, factory: Factory, member_account: Account
) -> None:
    project = factory.project(client, member_account)
    path = f"/v1/projects/{project['id']}"
    client.delete(path, headers=member_account.headers)
    archived = client.get(path, headers=member_account.headers).json()

    again = client.patch(
        path, json={"status": "archived"}, headers=member_account.headers
    )

    assert again.status_code == 200, again.text
    assert again.json() == archived


def test_blank_name_is_explained_in_words_not_as_a_pattern(
    client, member_account: Account
) -> None:
    response = client.post(
        "/v1/projects", json={"name": "   "}, headers=member_account.headers
    )

    body = assert_error(response, 422, "validation_failed")
    assert body["details"] == [
        {"field": "name", "message": "must not be blank or contain NUL characters"}
    ]


def test_patch_status_archived_archives_like_delete(
    client, factory: Factory, member_account: Account
) -> None:
    project = factory.project(client, member_account)

    body = client.patch(
        f"/v1/projects/{project['id']}",
        json={"status": "archived"},
        headers=member_account.headers,
    ).json()

    assert body["status"] == "archived"
    assert body["purge_after"] is not None


def test_project_past_purge_after_is_gone(
    client, runtime, factory: Factory, member_account: Account
) -> None:
    project = factory.project(client, member_account)
    path = f"/v1/projects/{project['id']}"
    client.delete(path, headers=member_account.headers)
    with runtime.database.write() as session:
        session.execute(
            update(Project)
            .where(Project.id == uuid.UUID(project["id"]))
            .values(purge_after=datetime.fromisoformat("2020-01-01T00:00:00+00:00"))
        )
        session.commit()

    assert_error(client.get(path, headers=member_account.headers), 404, "not_found")
    listed = client.get("/v1/projects?status=archived", headers=member_account.headers)
    assert listed.json()["data"] == []


def test_concurrent_project_creation_never_fails(
    client, member_account: Account
) -> None:
    statuses: list[int] = []

    def create(index: int) -> None:
        response = client.post(
            "/v1/projects",
            json={"name": f"Concurrent {index}"},
            headers=member_account.headers,
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [201] * 12
    listed = client.get("/v1/projects", headers=member_account.headers).json()
    assert listed["pagination"]["total"] == 12


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"flag": 1}, {"flag": True}),
        ({"flag": 0}, {"flag": False}),
        ({"n": 1}, {"n": 1.0}),
        ({"deep": {"x": [1]}}, {"deep": {"x": [True]}}),
    ],
)
def test_patch_settings_stores_values_python_calls_equal(
    client, factory: Factory, member_account: Account, before, after
) -> None:
    project = factory.project(client, member_account, settings=before)
    path = f"/v1/projects/{project['id']}"

    client.patch(path, json={"settings": after}, headers=member_account.headers)
    stored = client.get(path, headers=member_account.headers).json()

    assert json.dumps(stored["settings"]) == json.dumps(after)
    assert stored["updated_at"] != project["updated_at"]


def _race(client, path: str, headers: dict[str, str], bodies: dict[str, Any]) -> dict:
    """Send one PATCH per body at the same moment; the replies by name."""
    replies: dict[str, Any] = {}
    start = threading.Barrier(len(bodies))

    def send(name: str) -> None:
        start.wait()
        replies[name] = client.patch(path, json=bodies[name], headers=headers)

    threads = [threading.Thread(target=send, args=(name,)) for name in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return replies


def test_concurrent_archive_and_rename_apply_one_after_the_other(
    client, factory: Factory, member_account: Account
) -> None:
    for _ in range(8):
        project = factory.project(client, member_account, description="orig")
        path = f"/v1/projects/{project['id']}"

        replies = _race(
            client,
            path,
            member_account.headers,
            {"archive": {"status": "archived"}, "rename": {"description": "new"}},
        )
        final = client.get(path, headers=member_account.headers).json()

        archive, rename = replies["archive"], replies["rename"]
        assert archive.status_code == 200, archive.text
        if rename.status_code == 200:
            # The rename went first, so the archive must have seen it.
            assert archive.json()["description"] == "new"
            assert rename.json()["status"] == "active"
            assert final["description"] == "new"
        else:
            assert_error(rename, 409, "project_archived")
            assert final["description"] == "orig"
        assert final["status"] == "archived"


def test_responses_carry_utf8_as_is_not_escaped(
    client, member_account: Account, factory: Factory
) -> None:
    project = factory.project(client, member_account, name="Équipe 😀")

    response = client.get(
        f"/v1/projects/{project['id']}", headers=member_account.headers
    )

    assert response.headers["content-type"] == "application/json"
    assert "Équipe 😀".encode() in response.content
    assert b"\\u" not in response.content
