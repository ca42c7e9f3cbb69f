"""The test client refuses any response the OpenAPI document does not describe."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from palo_api import errors
from palo_api.handlers import projects as project_handlers
from tests.conftest import Account, Factory
from tests.response_check import ResponseChecker, UndocumentedResponse


def _answer(
    method: str,
    path: str,
    status: int,
    body: Any,
    content_type: str = "application/json",
    **headers: str,
) -> httpx.Response:
    given = {"x_request_id": str(uuid.uuid4()), **headers}
    sent = {"content-type": content_type}
    sent |= {name.replace("_", "-"): value for name, value in given.items() if value}
    return httpx.Response(
        status,
        content=json.dumps(body).encode(),
        headers=sent,
        request=httpx.Request(method, f"http://testserver{path}"),
    )


def _error(code: str = "not_found") -> dict[str, str]:
    return {"error": code, "message": "Not found.", "request_id": str(uuid.uuid4())}


def test_a_field_a_handler_adds_fails_the_test(
    client, factory: Factory, admin_account: Account, monkeypatch
) -> None:
    project = factory.project(client, admin_account)
    dump = project_handlers.dump_project
    monkeypatch.setattr(
        project_handlers,
        "dump_project",
        lambda *args: {**dump(*args), "internal_notes": "not in the document"},
    )

    with pytest.raises(UndocumentedResponse, match="internal_notes"):
        client.get(f"/v1/projects/{project['id']}", headers=admin_account.headers)


def test_a_status_the_operation_does_not_declare_fails_the_test(
    client, factory: Factory, admin_account: Account, monkeypatch
) -> None:
    project = factory.project(client, admin_account)

    def conflict(**_: Any) -> None:
        raise errors.Conflict("A status GET /projects/{project_id} never answers.")

    monkeypatch.setattr(project_handlers.projects, "get_project", conflict)

    with pytest.raises(UndocumentedResponse, match="409"):
        client.get(f"/v1/projects/{project['id']}", headers=admin_account.headers)


@pytest.fixture(scope="module")
def checker() -> ResponseChecker:
    return ResponseChecker()


PROJECT = f"/v1/projects/{uuid.uuid4()}"


@pytest.mark.parametrize(
    "response",
    [
        _answer("GET", PROJECT, 404, _error()),
        _answer("GET", "/v1/nowhere", 404, _error()),
        _answer("GET", "/v1%2Fprojects", 404, _error()),
        _answer("PUT", "/v1/projects", 405, _error("method_not_allowed")),
        _answer("GET", "/healthz", 200, "not under /v1"),
    ],
    ids=["declared", "unknown route", "encoded slash", "unknown method", "outside /v1"],
)
def test_documented_answers_pass(checker: ResponseChecker, response) -> None:
    checker(response)


@pytest.mark.parametrize(
    "response",
    [
        _answer("GET", PROJECT, 418, _error()),
        _answer("GET", PROJECT, 404, {**_error(), "trace": "..."}),
        _answer("GET", PROJECT, 404, _error(), content_type="text/plain"),
        _answer("GET", PROJECT, 404, _error(), x_request_id="not a uuid"),
        _answer("GET", PROJECT, 404, _error(), x_request_id=""),
        _answer("GET", "/v1/nowhere", 200, {"data": []}),
        _answer("GET", "/v1/nowhere", 404, {"detail": "Not Found"}),
        _answer("DELETE", PROJECT, 204, {"note": "already archived"}),
    ],
    ids=[
        "undeclared status",
        "undeclared field",
        "undeclared content type",
        "header breaks its schema",
        "required header missing",
        "unknown route answering 200",
        "unknown route with another body",
        "204 with a body",
    ],
)
def test_undocumented_answers_fail(checker: ResponseChecker, response) -> None:
    with pytest.raises(UndocumentedResponse):
        checker(response)
