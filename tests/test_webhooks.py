"""Webhook subscriptions: who manages them, what they accept, their log."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from palo_api.db.models import Webhook, WebhookDelivery
from palo_api.runtime import Runtime
from tests.conftest import Account, Factory, assert_error

# A public address written as a literal, so no name is resolved in tests.
URL = "https://93.184.216.34/palo-hook"
EVENTS = ["ticket.created", "ticket.resolved"]


def create(client: TestClient, account: Account, **fields: Any) -> Any:
    body = {"url": URL, "events": EVENTS, **fields}
    return client.post("/v1/webhooks", json=body, headers=account.headers)


def created(client: TestClient, account: Account, **fields: Any) -> dict[str, Any]:
    response = create(client, account, **fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def project(client: TestClient, factory: Factory, member_account: Account) -> str:
    """A project whose admin is ``member_account`` (not an org admin)."""
    project_id: str = factory.project(client, member_account)["id"]
    return project_id


def test_org_admin_subscribes_the_organization_and_sees_the_secret_once(
    client: TestClient, admin_account: Account
) -> None:
    response = create(client, admin_account, description="Support bot")

    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/webhooks/{body['id']}"
    assert body["secret"].startswith("whsec_")
    assert len(body["secret"]) > 30
    assert body["url"] == URL
    assert body["events"] == EVENTS
    assert body["project_id"] is None
    assert body["description"] == "Support bot"
    assert body["active"] is True
    assert body["disabled_reason"] is None
    read = client.get(f"/v1/webhooks/{body['id']}", headers=admin_account.headers)
    assert read.status_code == 200
    assert "secret" not in read.json()
    assert {k: v for k, v in body.items() if k != "secret"} == read.json()


def test_events_are_kept_in_the_documents_order(
    client: TestClient, admin_account: Account
) -> None:
    body = created(client, admin_account, events=["member.invited", "ticket.created"])

    assert body["events"] == ["ticket.created", "member.invited"]


def test_project_admin_subscribes_its_project(
    client: TestClient, member_account: Account, project: str
) -> None:
    body = created(client, member_account, project_id=project)

    assert body["project_id"] == project


def test_only_org_admins_subscribe_the_whole_organization(
    client: TestClient, member_account: Account
) -> None:
    assert_error(create(client, member_account), 403, "forbidden")


def test_project_members_and_viewers_may_not_subscribe_it(
    client: TestClient,
    factory: Factory,
    admin_account: Account,
    member_account: Account,
    project: str,
) -> None:
    viewer = factory.account(admin_account.org_id)
    factory.add_member(project, viewer, "viewer")
    colleague = factory.account(admin_account.org_id)
    factory.add_member(project, colleague, "member")

    assert_error(create(client, viewer, project_id=project), 403, "forbidden")
    assert_error(create(client, colleague, project_id=project), 403, "forbidden")


def test_a_project_the_caller_cannot_see_is_refused_like_a_missing_one(
    client: TestClient, outsider: Account, project: str
) -> None:
    hidden = create(client, outsider, project_id=project)
    missing_id = str(uuid.uuid4())
    missing = create(client, outsider, project_id=missing_id)

    hidden_body = assert_error(hidden, 422, "validation_failed")
    missing_body = assert_error(missing, 422, "validation_failed")
    assert hidden_body["details"][0]["field"] == "project_id"
    assert hidden_body["details"][0]["message"].replace(project, "<id>") == (
        missing_body["details"][0]["message"].replace(missing_id, "<id>")
    )


def test_an_archived_project_cannot_be_subscribed(
    client: TestClient, member_account: Account, project: str
) -> None:
    client.delete(f"/v1/projects/{project}", headers=member_account.headers)

    response = create(client, member_account, project_id=project)

    assert_error(response, 422, "project_archived")


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.216.34/hook",
        "ftp://93.184.216.34/hook",
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://172.16.0.9/hook",
        "https://192.168.1.1/hook",
        "https://100.64.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://0.0.0.0/hook",
        "https://224.0.0.1/hook",
        "https://2130706433/hook",
        "https://0x7f.1/hook",
        "https://0177.0.0.1/hook",
        "https://[::1]/hook",
        "https://[::]/hook",
        "https://[fe80::1]/hook",
        "https://[fc00::1]/hook",
        "https://[ff02::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[::ffff:169.254.169.254]/hook",
        "https://[64:ff9b::a9fe:a9fe]/hook",
        "https://[2002:7f00:1::]/hook",
        "https://localhost/hook",
        "https://api.localhost/hook",
        "https://metadata.google.internal/computeMetadata/v1",
        "https://user:pass@93.184.216.34/hook",
        "https://name-that-does-not-resolve.invalid/hook",
        "https://93.184.216.34/hook\u0001",
        "https://93.184.216.34:0/hook",
        "https://[fec0::1]/hook",
    ],
)
def test_targets_that_are_not_public_https_are_refused(
    client: TestClient, admin_account: Account, url: str
) -> None:
    response = create(client, admin_account, url=url)

    body = assert_error(response, 422, "validation_failed")
    assert body["details"][0]["field"] == "url"


def test_list_shows_the_webhooks_the_caller_manages_newest_first(
    client: TestClient,
    factory: Factory,
    admin_account: Account,
    member_account: Account,
    project: str,
) -> None:
    org_wide = created(client, admin_account)
    scoped = created(client, member_account, project_id=project)
    bystander = factory.account(admin_account.org_id)

    as_org_admin = client.get("/v1/webhooks", headers=admin_account.headers).json()
    as_project_admin = client.get("/v1/webhooks", headers=member_account.headers).json()
    filtered = client.get(
        "/v1/webhooks", params={"project_id": project}, headers=admin_account.headers
    ).json()
    as_bystander = client.get("/v1/webhooks", headers=bystander.headers).json()

    assert [w["id"] for w in as_org_admin["data"]] == [scoped["id"], org_wide["id"]]
    assert as_org_admin["pagination"]["total"] == 2
    assert [w["id"] for w in as_project_admin["data"]] == [scoped["id"]]
    assert [w["id"] for w in filtered["data"]] == [scoped["id"]]
    assert as_bystander["data"] == []
    assert as_bystander["pagination"]["total"] == 0
    assert all("secret" not in w for w in as_org_admin["data"])


def test_webhooks_are_404_to_whoever_does_not_manage_them(
    client: TestClient,
    factory: Factory,
    admin_account: Account,
    member_account: Account,
    outsider: Account,
    project: str,
) -> None:
    scoped = created(client, member_account, project_id=project)
    viewer = factory.account(admin_account.org_id)
    factory.add_member(project, viewer, "viewer")
    paths = [
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("POST", "/rotate-secret"),
        ("POST", "/ping"),
        ("GET", "/deliveries"),
    ]

    for account in (viewer, outsider, factory.account(admin_account.org_id)):
        for method, suffix in paths:
            body = {"active": False} if method == "PATCH" else None
            response = client.request(
                method,
                f"/v1/webhooks/{scoped['id']}{suffix}",
                json=body,
                headers=account.headers,
            )
            assert_error(response, 404, "not_found")


def test_update_changes_only_what_it_names(
    client: TestClient, admin_account: Account
) -> None:
    hook = created(client, admin_account, description="before")

    response = client.patch(
        f"/v1/webhooks/{hook['id']}",
        json={"events": ["project.created"], "description": None},
        headers=admin_account.headers,
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["events"] == ["project.created"]
    assert body["description"] is None
    assert body["url"] == URL
    assert body["updated_at"] > hook["updated_at"]


def test_update_checks_a_new_url_like_creation(
    client: TestClient, admin_account: Account
) -> None:
    hook = created(client, admin_account)

    response = client.patch(
        f"/v1/webhooks/{hook['id']}",
        json={"url": "https://169.254.169.254/"},
        headers=admin_account.headers,
    )

    assert_error(response, 422, "validation_failed")
    unchanged = client.get(f"/v1/webhooks/{hook['id']}", headers=admin_account.headers)
    assert unchanged.json()["url"] == URL


def test_reenabling_clears_the_reason_palo_disabled_it(
    client: TestClient, runtime: Runtime, admin_account: Account
) -> None:
    hook = created(client, admin_account)
    with runtime.database.write() as session:
        session.execute(
            sa.update(Webhook)
            .where(Webhook.id == uuid.UUID(hook["id"]))
            .values(active=False, disabled_reason="The receiver answered 410 Gone.")
        )
        session.commit()

    before = client.get(f"/v1/webhooks/{hook['id']}", headers=admin_account.headers)
    after = client.patch(
        f"/v1/webhooks/{hook['id']}",
        json={"active": True},
        headers=admin_account.headers,
    )

    assert before.json()["active"] is False
    assert before.json()["disabled_reason"] == "The receiver answered 410 Gone."
    assert after.json()["active"] is True
    assert after.json()["disabled_reason"] is None


def test_delete_removes_the_webhook_and_its_log(
    client: TestClient, runtime: Runtime, admin_account: Account
) -> None:
    hook = created(client, admin_account)
    client.post(f"/v1/webhooks/{hook['id']}/ping", headers=admin_account.headers)

    deleted = client.delete(f"/v1/webhooks/{hook['id']}", headers=admin_account.headers)
    again = client.get(f"/v1/webhooks/{hook['id']}", headers=admin_account.headers)

    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_error(again, 404, "not_found")
    with runtime.database.read() as session:
        left = session.scalar(
            sa.select(sa.func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == uuid.UUID(hook["id"]))
        )
    assert left == 0


def test_rotation_returns_a_new_secret_and_keeps_the_old_one_signing(
    client: TestClient, runtime: Runtime, admin_account: Account
) -> None:
    hook = created(client, admin_account)

    response = client.post(
        f"/v1/webhooks/{hook['id']}/rotate-secret", headers=admin_account.headers
    )

    assert response.status_code == 200, response.text
    new_secret = response.json()["secret"]
    assert new_secret.startswith("whsec_")
    assert new_secret != hook["secret"]
    with runtime.database.read() as session:
        stored = session.get(Webhook, uuid.UUID(hook["id"]))
    assert stored is not None
    assert stored.secret == new_secret
    assert stored.previous_secret == hook["secret"]
    assert stored.previous_secret_expires_at is not None


def test_ping_queues_a_delivery_listed_with_the_others(
    client: TestClient, admin_account: Account
) -> None:
    hook = created(client, admin_account)

    ping = client.post(f"/v1/webhooks/{hook['id']}/ping", headers=admin_account.headers)
    listed = client.get(
        f"/v1/webhooks/{hook['id']}/deliveries", headers=admin_account.headers
    )

    assert ping.status_code == 202, ping.text
    delivery = ping.json()
    assert delivery["event_type"] == "ping"
    assert delivery["status"] == "pending"
    assert delivery["attempts"] == []
    assert delivery["webhook_id"] == hook["id"]
    assert delivery["next_attempt_at"] is not None
    assert listed.json()["data"] == [delivery]


def test_redelivery_keeps_the_event_id(
    client: TestClient, admin_account: Account
) -> None:
    hook = created(client, admin_account)
    first = client.post(
        f"/v1/webhooks/{hook['id']}/ping", headers=admin_account.headers
    ).json()

    again = client.post(
        f"/v1/webhooks/{hook['id']}/deliveries/{first['id']}/redeliver",
        headers=admin_account.headers,
    )

    assert again.status_code == 202, again.text
    assert again.json()["event_id"] == first["event_id"]
    assert again.json()["id"] != first["id"]


def test_redelivering_another_webhooks_delivery_is_404(
    client: TestClient, admin_account: Account
) -> None:
    one = created(client, admin_account)
    other = created(client, admin_account)
    delivery = client.post(
        f"/v1/webhooks/{other['id']}/ping", headers=admin_account.headers
    ).json()

    response = client.post(
        f"/v1/webhooks/{one['id']}/deliveries/{delivery['id']}/redeliver",
        headers=admin_account.headers,
    )
    unknown = client.post(
        f"/v1/webhooks/{one['id']}/deliveries/{uuid.uuid4()}/redeliver",
        headers=admin_account.headers,
    )

    assert_error(response, 404, "not_found")
    assert_error(unknown, 404, "not_found")
