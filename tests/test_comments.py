"""Comments through the API: rendering, mentions, roles, history, archived projects."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import Account, Factory, assert_error
from tests.test_markdown import XSS_PAYLOADS, audit_html


@pytest.fixture
def ticket(client, factory: Factory, member_account: Account) -> dict[str, Any]:
    """A ticket in a project whose admin is ``member_account``."""
    project = factory.project(client, member_account)
    return factory.ticket(client, member_account, project["id"])


def _comment(client, account: Account, ticket_id: str, body: str) -> Any:
    return client.post(
        f"/v1/tickets/{ticket_id}/comments",
        json={"body": body},
        headers=account.headers,
    )


def test_comment_keeps_the_source_and_renders_html(
    client, member_account: Account, ticket: dict[str, Any]
) -> None:
    source = (
        "Fixed in **v2**:\n\n```\nrm -rf <tmp>\n```\n\nSee [notes](https://example.com)"
    )

    response = _comment(client, member_account, ticket["id"], source)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["body"] == source
    assert body["ticket_id"] == ticket["id"]
    assert body["author_id"] == str(member_account.user_id)
    assert "<strong>v2</strong>" in body["body_html"]
    assert "rm -rf &lt;tmp&gt;" in body["body_html"]
    assert 'href="https://example.com"' in body["body_html"]
    assert 'rel="noopener noreferrer nofollow"' in body["body_html"]
    assert body["mentions"] == []


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
def test_stored_comment_html_carries_no_script(
    client, member_account: Account, ticket: dict[str, Any], payload: str
) -> None:
    response = _comment(client, member_account, ticket["id"], payload)

    if "\x00" in payload:  # no database stores NUL: refused before rendering
        assert_error(response, 422, "validation_failed")
        return
    assert response.status_code == 201, response.text
    assert audit_html(response.json()["body_html"]).problems == []
    assert response.json()["body"] == payload  # the source is kept as sent
    detail = client.get(f"/v1/tickets/{ticket['id']}", headers=member_account.headers)
    [stored] = detail.json()["comments"]
    assert stored["body_html"] == response.json()["body_html"]


def test_mentions_are_users_of_the_organization_in_order(
    client, factory: Factory, member_account: Account, outsider: Account, ticket
) -> None:
    colleague = factory.account(member_account.org_id)
    ghost = uuid.uuid4()
    source = (
        f"@{colleague.user_id} and @{outsider.user_id} and @{ghost}, "
        f"again @{str(colleague.user_id).upper()}, me @{member_account.user_id}, "
        f"not in code `@{member_account.user_id}`"
    )

    response = _comment(client, member_account, ticket["id"], source)

    assert response.json()["mentions"] == [
        str(colleague.user_id),
        str(member_account.user_id),
    ]


def test_comment_is_recorded_in_history_and_listed_oldest_first(
    client, member_account: Account, ticket: dict[str, Any]
) -> None:
    first = _comment(client, member_account, ticket["id"], "first")
    second = _comment(client, member_account, ticket["id"], "second")

    detail = client.get(f"/v1/tickets/{ticket['id']}", headers=member_account.headers)

    body = detail.json()
    assert [c["id"] for c in body["comments"]] == [
        first.json()["id"],
        second.json()["id"],
    ]
    assert body["comments"][0] == first.json()
    assert [
        (e["action"], e["comment_id"], e["request_id"]) for e in body["history"]
    ] == [
        ("ticket.created", None, body["history"][0]["request_id"]),
        ("comment.created", first.json()["id"], first.headers["x-request-id"]),
        ("comment.created", second.json()["id"], second.headers["x-request-id"]),
    ]
    assert body["updated_at"] == ticket["updated_at"]  # a comment changes no field


def test_viewer_cannot_comment(
    client, factory: Factory, member_account: Account, ticket: dict[str, Any]
) -> None:
    viewer = factory.account(member_account.org_id)
    factory.add_member(ticket["project_id"], viewer, "viewer")

    response = _comment(client, viewer, ticket["id"], "me too")

    assert_error(response, 403, "forbidden")


def test_plain_member_of_the_project_can_comment(
    client, factory: Factory, member_account: Account, ticket: dict[str, Any]
) -> None:
    member = factory.account(member_account.org_id)
    factory.add_member(ticket["project_id"], member, "member")

    response = _comment(client, member, ticket["id"], "on it")

    assert response.status_code == 201, response.text


def test_comment_on_a_ticket_the_caller_cannot_see_is_404(
    client, factory: Factory, member_account: Account, outsider: Account, ticket
) -> None:
    colleague = factory.account(member_account.org_id)  # not in the project

    for account in (outsider, colleague):
        response = _comment(client, account, ticket["id"], "hello")
        assert_error(response, 404, "not_found")
    response = _comment(client, member_account, str(uuid.uuid4()), "hello")
    assert_error(response, 404, "not_found")


def test_archived_project_takes_no_comments(
    client, member_account: Account, ticket: dict[str, Any]
) -> None:
    client.delete(
        f"/v1/projects/{ticket['project_id']}", headers=member_account.headers
    )

    response = _comment(client, member_account, ticket["id"], "late")

    assert_error(response, 422, "project_archived")
    detail = client.get(f"/v1/tickets/{ticket['id']}", headers=member_account.headers)
    assert detail.json()["comments"] == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"body": ""}, 422),
        ({"body": "   \n "}, 422),
        ({"body": "x" * 20_001}, 422),
        ({"body": "ok", "author_id": str(uuid.uuid4())}, 422),
        ({}, 422),
    ],
)
def test_comment_body_is_validated(
    client, member_account: Account, ticket: dict[str, Any], body, status
) -> None:
    response = client.post(
        f"/v1/tickets/{ticket['id']}/comments",
        json=body,
        headers=member_account.headers,
    )

    assert_error(response, status, "validation_failed")


def test_longest_comment_is_accepted(
    client, member_account: Account, ticket: dict[str, Any]
) -> None:
    source = "<b>" * 6_666 + "xy"  # 20,000 characters that each escape to 4+

    response = _comment(client, member_account, ticket["id"], source)

    assert response.status_code == 201, response.text
    assert response.json()["body_html"].count("&lt;b&gt;") == 6_666


def test_callers_refused_never_have_their_markdown_rendered(
    client,
    factory: Factory,
    member_account: Account,
    outsider: Account,
    ticket: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from palo_api.services import comments

    rendered: list[str] = []
    real = comments.render_markdown
    monkeypatch.setattr(
        comments, "render_markdown", lambda body: rendered.append(body) or real(body)
    )
    viewer = factory.account(member_account.org_id)
    factory.add_member(ticket["project_id"], viewer, "viewer")
    archived = factory.ticket(
        client, member_account, factory.project(client, member_account)["id"]
    )
    client.delete(
        f"/v1/projects/{archived['project_id']}", headers=member_account.headers
    )

    refused = [
        (_comment(client, outsider, ticket["id"], "x"), 404),
        (_comment(client, member_account, str(uuid.uuid4()), "x"), 404),
        (_comment(client, viewer, ticket["id"], "x"), 403),
        (_comment(client, member_account, archived["id"], "x"), 422),
    ]

    assert [response.status_code for response, _ in refused] == [
        status for _, status in refused
    ]
    assert rendered == []
    assert _comment(client, member_account, ticket["id"], "ok").status_code == 201
    assert rendered == ["ok"]


def test_comment_that_renders_to_too_much_html_is_refused(
    client, member_account: Account, ticket: dict[str, Any]
) -> None:
    # 20,000 characters whose one reference link is used 6,000 times.
    source = "[a]: https://example.com/\n\n" + "[a]" * 6_000

    response = _comment(client, member_account, ticket["id"], source)

    body = assert_error(response, 422, "validation_failed")
    assert body["details"][0]["field"] == "body"
    assert "characters of HTML" in body["details"][0]["message"]
    detail = client.get(f"/v1/tickets/{ticket['id']}", headers=member_account.headers)
    assert detail.json()["comments"] == []
