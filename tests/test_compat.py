"""The compatibility guard (``make compat``) refuses changes that break clients.

Each test changes a copy of the released document and runs the guard,
``tools/compat.mjs`` (api-smart-diff), on it as ``make compat`` does.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT

RELEASED = REPO_ROOT / "openapi" / "released" / "palo-v1.yaml"
GUARD = REPO_ROOT / "tools" / "compat.mjs"
Change = Callable[[dict[str, Any]], None]


def _guard(current: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None or not (REPO_ROOT / "tools" / "node_modules").exists():
        pytest.fail("the guard needs Node.js and `make tools`")
    return subprocess.run(
        [node, str(GUARD), str(RELEASED), str(current)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _changed(tmp_path: Path, change: Change) -> Path:
    document = copy.deepcopy(yaml.safe_load(RELEASED.read_text(encoding="utf-8")))
    change(document)
    path = tmp_path / "palo-v1.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def _schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["schemas"][name]
    return schema


def remove_path(document: dict[str, Any]) -> None:
    del document["paths"]["/webhooks/{webhook_id}/ping"]


def remove_response_field(document: dict[str, Any]) -> None:
    project = _schema(document, "Project")
    del project["properties"]["purge_after"]
    project["required"].remove("purge_after")


def remove_enum_value(document: dict[str, Any]) -> None:
    _schema(document, "TicketCreate")["properties"]["priority"]["enum"].remove("p4")


def remove_query_enum_value(document: dict[str, Any]) -> None:
    status = document["paths"]["/projects"]["get"]["parameters"][2]
    assert status["name"] == "status"
    status["schema"]["enum"].remove("archived")


def add_required_request_field(document: dict[str, Any]) -> None:
    ticket = _schema(document, "TicketCreate")
    ticket["properties"]["team"] = {"type": "string"}
    ticket["required"].append("team")


def require_optional_request_field(document: dict[str, Any]) -> None:
    _schema(document, "TicketCreate")["required"].append("description")


def remove_optional_request_field(document: dict[str, Any]) -> None:
    # Request bodies refuse unknown fields: a client still sending it gets 422.
    del _schema(document, "TicketCreate")["properties"]["description"]


def remove_query_parameter(document: dict[str, Any]) -> None:
    # Unknown query parameters answer 400.
    parameters = document["paths"]["/tickets"]["get"]["parameters"]
    document["paths"]["/tickets"]["get"]["parameters"] = [
        p for p in parameters if p.get("name") != "priority"
    ]
    assert len(document["paths"]["/tickets"]["get"]["parameters"]) < len(parameters)


def rename_operation(document: dict[str, Any]) -> None:
    # Generated SDKs name their functions after operationIds.
    document["paths"]["/projects"]["post"]["operationId"] = "make_project"


def remove_error_field(document: dict[str, Any]) -> None:
    error = _schema(document, "Error")
    del error["properties"]["request_id"]
    error["required"].remove("request_id")


def change_query_parameter_type(document: dict[str, Any]) -> None:
    parameter = next(
        p
        for p in document["paths"]["/tickets"]["get"]["parameters"]
        if p.get("name") == "project_id"
    )
    parameter["schema"] = {"type": "integer"}


def change_base_path(document: dict[str, Any]) -> None:
    document["servers"] = [{"url": "/v2"}]


def change_security(document: dict[str, Any]) -> None:
    document["security"] = [{"clientBasic": []}]


def refuse_null_in_request(document: dict[str, Any]) -> None:
    _schema(document, "TicketUpdate")["properties"]["assignee_id"]["nullable"] = False


def change_response_header_type(document: dict[str, Any]) -> None:
    headers = document["components"]["headers"]
    name = next(n for n in headers if "Limit" in n)
    headers[name]["schema"] = {"type": "string"}


def narrow_request_type(document: dict[str, Any]) -> None:
    _schema(document, "TicketCreate")["properties"]["title"]["maxLength"] = 10


@pytest.mark.parametrize(
    "change",
    [
        remove_optional_request_field,
        remove_query_parameter,
        rename_operation,
        narrow_request_type,
        remove_error_field,
        change_query_parameter_type,
        change_base_path,
        change_security,
        refuse_null_in_request,
        change_response_header_type,
        remove_path,
        remove_response_field,
        remove_enum_value,
        remove_query_enum_value,
        add_required_request_field,
        require_optional_request_field,
    ],
    ids=lambda change: change.__name__,
)
def test_guard_refuses_a_breaking_change(tmp_path: Path, change: Change) -> None:
    result = _guard(_changed(tmp_path, change))

    assert result.returncode == 1, result.stdout + result.stderr
    assert "breaking:" in result.stdout


def add_optional_response_field(document: dict[str, Any]) -> None:
    _schema(document, "Project")["properties"]["color"] = {"type": "string"}


def add_operation(document: dict[str, Any]) -> None:
    document["paths"]["/tickets/{ticket_id}"]["delete"] = copy.deepcopy(
        document["paths"]["/webhooks/{webhook_id}"]["delete"]
    ) | {"operationId": "delete_ticket", "tags": ["tickets"]}


def add_optional_query_parameter(document: dict[str, Any]) -> None:
    document["paths"]["/tickets"]["get"]["parameters"].append(
        {"name": "label", "in": "query", "schema": {"type": "string"}}
    )


def add_request_enum_value(document: dict[str, Any]) -> None:
    _schema(document, "TicketCreate")["properties"]["priority"]["enum"].append("p5")


@pytest.mark.parametrize(
    "change",
    [
        add_optional_response_field,
        add_operation,
        add_optional_query_parameter,
        add_request_enum_value,
    ],
    ids=lambda c: c.__name__,
)
def test_guard_accepts_an_additive_change(tmp_path: Path, change: Change) -> None:
    result = _guard(_changed(tmp_path, change))

    assert result.returncode == 0, result.stdout + result.stderr


def test_current_document_keeps_the_released_contract() -> None:
    result = _guard(REPO_ROOT / "openapi" / "palo-v1.yaml")

    assert result.returncode == 0, result.stdout + result.stderr
