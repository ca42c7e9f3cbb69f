"""Every operation of the document, called by every kind of caller.

One table gives, for each operationId, the request to send and the status
each caller must get: an outsider (an org admin of another organization), an
org member who is not in the project, the project's viewer, member and
admin, and an org admin of the project's organization. An operation of the
document without a row fails the test, so a new one cannot ship untested.

Beyond the statuses, what an outsider or non-member receives must not tell
the resource apart from one that does not exist: the same error body as for
a random id, and lists and counts that do not include it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.testclient import TestClient

from palo_api.runtime import Runtime
from tests.conftest import Account, Factory, assert_error
from tests.test_openapi_document import NOT_BUILT, OPERATIONS
from tests.test_quotas import quota_headers, set_plan

HOOK_URL = "https://93.184.216.34/hook"
ROLES = ("outsider", "nonmember", "viewer", "member", "admin", "org_admin")
# Roles that must not be able to tell the project exists.
BLIND = ("outsider", "nonmember")


@dataclass
class World:
    """One project with a caller of each role, a ticket, and people to manage."""

    callers: dict[str, Account]
    project_id: str
    ticket_id: str
    # A plain member other callers may change or remove, and an org user
    # who is not in the project yet, to invite.
    extra: Account
    invitee: Account
    # A webhook of the project, and a delivery of it.
    webhook_id: str
    delivery_id: str


def build_world(client: TestClient, factory: Factory) -> World:
    org_admin = factory.account(org_role="admin")
    org = org_admin.org_id
    admin = factory.account(org)
    callers = {
        "outsider": factory.account(org_role="admin"),
        "nonmember": factory.account(org),
        "viewer": factory.account(org),
        "member": factory.account(org),
        "admin": admin,
        "org_admin": org_admin,
    }
    project = factory.project(client, admin)
    extra = factory.account(org)
    factory.add_member(project["id"], callers["viewer"], "viewer")
    factory.add_member(project["id"], callers["member"], "member")
    factory.add_member(project["id"], extra, "member")
    ticket = factory.ticket(client, callers["member"], project["id"])
    hook = client.post(
        "/v1/webhooks",
        json={
            "url": HOOK_URL,
            "events": ["ticket.created"],
            "project_id": project["id"],
        },
        headers=admin.headers,
    ).json()
    ping = client.post(f"/v1/webhooks/{hook['id']}/ping", headers=admin.headers).json()
    return World(
        callers=callers,
        project_id=project["id"],
        ticket_id=ticket["id"],
        extra=extra,
        invitee=factory.account(org),
        webhook_id=hook["id"],
        delivery_id=ping["id"],
    )


@pytest.fixture(scope="module")
def shared_world(client: TestClient, factory: Factory) -> World:
    """For the calls that leave the world as they found it, or near enough."""
    return build_world(client, factory)


@pytest.fixture
def fresh_world(client: TestClient, factory: Factory) -> World:
    """For the calls that change who is in the project, or archive it."""
    return build_world(client, factory)


def world_for(request: pytest.FixtureRequest, operation_id: str) -> World:
    fixture = "fresh_world" if TABLE[operation_id].fresh else "shared_world"
    world: World = request.getfixturevalue(fixture)
    return world


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    json: Any = None
    params: dict[str, str] | None = None
    data: dict[str, str] | None = None
    # Whether the caller's bearer token goes with the request.
    bearer: bool = True


Build = Callable[[World, Account], Call]


@dataclass(frozen=True)
class Row:
    build: Build
    expected: dict[str, int]
    # The call changes membership or archives the project: it needs a world
    # of its own, or it would change the next caller's answer.
    fresh: bool = False


def statuses(*codes: int) -> dict[str, int]:
    assert len(codes) == len(ROLES)
    return dict(zip(ROLES, codes, strict=True))


def everyone(code: int) -> dict[str, int]:
    return dict.fromkeys(ROLES, code)


def _token(_w: World, me: Account) -> Call:
    body = {"client_id": me.client_id, "client_secret": me.client_secret}
    return Call("POST", "/v1/auth/token", json=body, bearer=False)


def _project(w: World, _me: Account, suffix: str = "") -> str:
    return f"/v1/projects/{w.project_id}{suffix}"


def _ticket(w: World, _me: Account, suffix: str = "") -> str:
    return f"/v1/tickets/{w.ticket_id}{suffix}"


def _webhook(w: World, _me: Account, suffix: str = "") -> str:
    return f"/v1/webhooks/{w.webhook_id}{suffix}"


# Webhooks are seen only by those who manage them: a project's admins and
# the org admins. Everyone else gets 404, whatever their role elsewhere.
MANAGERS_ONLY = (404, 404, 404, 404)


TABLE: dict[str, Row] = {
    "create_token": Row(_token, everyone(200)),
    "refresh_token": Row(lambda w, me: Call("POST", "/v1/auth/refresh"), everyone(200)),
    "list_projects": Row(lambda w, me: Call("GET", "/v1/projects"), everyone(200)),
    "create_project": Row(
        lambda w, me: Call("POST", "/v1/projects", json={"name": "Mine"}),
        everyone(201),
    ),
    "get_project": Row(
        lambda w, me: Call("GET", _project(w, me)),
        statuses(404, 404, 200, 200, 200, 200),
    ),
    "update_project": Row(
        lambda w, me: Call("PATCH", _project(w, me), json={"name": "Renamed"}),
        statuses(404, 404, 403, 403, 200, 200),
    ),
    "archive_project": Row(
        lambda w, me: Call("DELETE", _project(w, me)),
        statuses(404, 404, 403, 403, 204, 204),
        fresh=True,
    ),
    "list_project_members": Row(
        lambda w, me: Call("GET", _project(w, me, "/members")),
        statuses(404, 404, 200, 200, 200, 200),
    ),
    "add_project_member": Row(
        lambda w, me: Call(
            "POST",
            _project(w, me, "/members"),
            json={"user_id": str(w.invitee.user_id), "role": "viewer"},
        ),
        statuses(404, 404, 403, 403, 201, 201),
        fresh=True,
    ),
    "update_project_member": Row(
        lambda w, me: Call(
            "PATCH",
            _project(w, me, f"/members/{w.extra.user_id}"),
            json={"role": "viewer"},
        ),
        statuses(404, 404, 403, 403, 200, 200),
        fresh=True,
    ),
    "remove_project_member": Row(
        lambda w, me: Call("DELETE", _project(w, me, f"/members/{w.extra.user_id}")),
        statuses(404, 404, 403, 403, 204, 204),
        fresh=True,
    ),
    "list_tickets": Row(
        lambda w, me: Call("GET", "/v1/tickets", params={"project_id": w.project_id}),
        everyone(200),
    ),
    "create_ticket": Row(
        lambda w, me: Call(
            "POST", "/v1/tickets", json={"title": "Mine", "project_id": w.project_id}
        ),
        # The project is named in the body, so one the caller cannot see is
        # a field at fault (422), worded as for a project that does not exist.
        statuses(422, 422, 403, 201, 201, 201),
    ),
    "get_ticket": Row(
        lambda w, me: Call("GET", _ticket(w, me)),
        statuses(404, 404, 200, 200, 200, 200),
    ),
    "update_ticket": Row(
        lambda w, me: Call("PATCH", _ticket(w, me), json={"priority": "p1"}),
        statuses(404, 404, 403, 200, 200, 200),
    ),
    "create_ticket_comment": Row(
        lambda w, me: Call("POST", _ticket(w, me, "/comments"), json={"body": "Hi"}),
        statuses(404, 404, 403, 201, 201, 201),
    ),
    "list_webhooks": Row(lambda w, me: Call("GET", "/v1/webhooks"), everyone(200)),
    "create_webhook": Row(
        lambda w, me: Call(
            "POST",
            "/v1/webhooks",
            json={
                "url": HOOK_URL,
                "events": ["ticket.created"],
                "project_id": w.project_id,
            },
        ),
        statuses(422, 422, 403, 403, 201, 201),
    ),
    "get_webhook": Row(
        lambda w, me: Call("GET", _webhook(w, me)), statuses(*MANAGERS_ONLY, 200, 200)
    ),
    "update_webhook": Row(
        lambda w, me: Call("PATCH", _webhook(w, me), json={"description": "x"}),
        statuses(*MANAGERS_ONLY, 200, 200),
    ),
    "delete_webhook": Row(
        lambda w, me: Call("DELETE", _webhook(w, me)),
        statuses(*MANAGERS_ONLY, 204, 204),
        fresh=True,
    ),
    "rotate_webhook_secret": Row(
        lambda w, me: Call("POST", _webhook(w, me, "/rotate-secret")),
        statuses(*MANAGERS_ONLY, 200, 200),
    ),
    "ping_webhook": Row(
        lambda w, me: Call("POST", _webhook(w, me, "/ping")),
        statuses(*MANAGERS_ONLY, 202, 202),
    ),
    "list_webhook_deliveries": Row(
        lambda w, me: Call("GET", _webhook(w, me, "/deliveries")),
        statuses(*MANAGERS_ONLY, 200, 200),
    ),
    "redeliver_webhook_delivery": Row(
        lambda w, me: Call(
            "POST", _webhook(w, me, f"/deliveries/{w.delivery_id}/redeliver")
        ),
        statuses(*MANAGERS_ONLY, 202, 202),
    ),
}

DOCUMENT_OPERATIONS = {operation["operationId"] for _, _, operation in OPERATIONS}


def test_every_operation_of_the_document_has_a_row() -> None:
    assert set(TABLE) == DOCUMENT_OPERATIONS


def test_rows_of_operations_not_built_yet_expect_501_and_only_they() -> None:
    for operation_id, row in TABLE.items():
        expects_501 = set(row.expected.values()) == {501}
        assert expects_501 is (operation_id in NOT_BUILT), operation_id


def send(client: TestClient, call: Call, me: Account) -> Any:
    headers = me.headers if call.bearer else {}
    return client.request(
        call.method,
        call.path,
        json=call.json,
        params=call.params,
        data=call.data,
        headers=headers,
    )


def cases() -> Iterator[Any]:
    for operation_id in sorted(TABLE):
        for role in ROLES:
            yield pytest.param(operation_id, role, id=f"{operation_id}-{role}")


@pytest.mark.parametrize(("operation_id", "role"), list(cases()))
def test_each_caller_gets_the_status_of_its_role(
    client: TestClient, request: pytest.FixtureRequest, operation_id: str, role: str
) -> None:
    world = world_for(request, operation_id)
    row = TABLE[operation_id]
    me = world.callers[role]

    response = send(client, row.build(world, me), me)

    assert response.status_code == row.expected[role], response.text
    if response.status_code >= 400:
        assert response.json()["request_id"] == response.headers["x-request-id"]


def _same_refusal(hidden: Any, missing: Any, ids: dict[str, str]) -> None:
    """Equal bodies once each id is replaced by the id it stands for."""
    bodies = []
    for response in (hidden, missing):
        text = response.text.replace(response.json()["request_id"], "<request>")
        for real, unknown in ids.items():
            text = text.replace(real, "<id>").replace(unknown, "<id>")
        bodies.append(text)
    assert bodies[0] == bodies[1]


def _swap_ids(call: Call, ids: dict[str, str]) -> Call:
    """The same call with the project and ticket ids replaced by unknown ones."""

    def swap(text: str) -> str:
        for real, unknown in ids.items():
            text = text.replace(real, unknown)
        return text

    json = call.json
    if isinstance(json, dict):
        json = {k: swap(v) if isinstance(v, str) else v for k, v in json.items()}
    return Call(call.method, swap(call.path), json, call.params, call.data)


HIDDEN_REFUSALS = [
    pytest.param(operation_id, role, id=f"{operation_id}-{role}")
    for operation_id in sorted(TABLE)
    for role in ROLES
    if TABLE[operation_id].expected[role] in (404, 422)
]


@pytest.mark.parametrize(("operation_id", "role"), HIDDEN_REFUSALS)
def test_a_hidden_resource_is_refused_exactly_like_a_missing_one(
    client: TestClient, request: pytest.FixtureRequest, operation_id: str, role: str
) -> None:
    world = world_for(request, operation_id)
    me = world.callers[role]
    call = TABLE[operation_id].build(world, me)
    ids = {
        known: str(uuid.uuid4())
        for known in (
            world.project_id,
            world.ticket_id,
            world.webhook_id,
            world.delivery_id,
        )
    }

    hidden = send(client, call, me)
    missing = send(client, _swap_ids(call, ids), me)

    assert (
        hidden.status_code == missing.status_code == TABLE[operation_id].expected[role]
    )
    _same_refusal(hidden, missing, ids)


@pytest.mark.parametrize("role", BLIND)
def test_lists_and_counts_leave_hidden_resources_out(
    client: TestClient, shared_world: World, role: str
) -> None:
    world = shared_world
    me = world.callers[role]
    projects = client.get("/v1/projects", headers=me.headers).json()
    archived = client.get(
        "/v1/projects", params={"status": "archived"}, headers=me.headers
    ).json()
    queries: list[dict[str, str]] = [
        {},
        {"project_id": world.project_id},
        {"assignee_id": str(world.callers["member"].user_id)},
        {"status": "open"},
        {"priority": "p3"},
    ]
    ticket_lists = [
        client.get("/v1/tickets", params=q, headers=me.headers).json() for q in queries
    ]

    assert world.project_id not in {p["id"] for p in projects["data"]}
    assert world.project_id not in {p["id"] for p in archived["data"]}
    for listed in ticket_lists:
        assert world.ticket_id not in {t["id"] for t in listed["data"]}
    # The filter naming the hidden project matches nothing, and says so in
    # its count as well.
    assert ticket_lists[1]["pagination"]["total"] == 0
    assert ticket_lists[1]["data"] == []


@pytest.mark.parametrize("role", ["viewer", "member", "admin", "org_admin"])
def test_lists_show_the_project_to_those_who_may_see_it(
    client: TestClient, fresh_world: World, role: str
) -> None:
    world = fresh_world
    me = world.callers[role]

    projects = client.get("/v1/projects", headers=me.headers).json()
    tickets = client.get(
        "/v1/tickets", params={"project_id": world.project_id}, headers=me.headers
    ).json()

    assert world.project_id in {p["id"] for p in projects["data"]}
    assert [t["id"] for t in tickets["data"]] == [world.ticket_id]
    assert tickets["pagination"]["total"] == 1


TOKEN_OPERATIONS = {"create_token", "refresh_token"}


def test_every_counted_operation_carries_the_quota_headers(
    client: TestClient, runtime: Runtime, fresh_world: World
) -> None:
    me = fresh_world.callers["admin"]
    set_plan(runtime, me.org_id, "business")
    seen: dict[str, tuple[int, bool]] = {}

    # Membership changes, then removing the member they change, then
    # archiving, last: every call finds the project as its row expects it.
    last = ("remove_project_member", "archive_project")
    order = sorted(
        set(TABLE) - NOT_BUILT,
        key=lambda op: (last.index(op) if op in last else -1, TABLE[op].fresh, op),
    )
    for operation_id in order:
        response = send(client, TABLE[operation_id].build(fresh_world, me), me)
        seen[operation_id] = (response.status_code, bool(quota_headers(response)))

    expected = {
        op: (TABLE[op].expected["admin"], op not in TOKEN_OPERATIONS) for op in order
    }
    assert seen == expected


# Operations not built yet answer 501 before authentication: there is no
# caller to count yet.
@pytest.mark.parametrize("operation_id", sorted(set(TABLE) - NOT_BUILT))
def test_a_starter_plan_is_refused_every_counted_operation(
    client: TestClient, factory: Factory, shared_world: World, operation_id: str
) -> None:
    starter = factory.account(factory.org("starter"), org_role="admin")

    response = send(client, TABLE[operation_id].build(shared_world, starter), starter)

    if operation_id in TOKEN_OPERATIONS:
        assert response.status_code == 200
    else:
        assert_error(response, 429, "plan_has_no_api_access")
