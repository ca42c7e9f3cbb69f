"""The OpenAPI document is valid, complete, and the server serves and follows it."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import pytest
from openapi_spec_validator import validate

from palo_api.app import HTTP_METHODS, load_spec, public_document

SPEC = load_spec()
OPERATIONS = [
    (path, method, operation)
    for path, item in SPEC["paths"].items()
    for method, operation in item.items()
    if method in HTTP_METHODS
]
# Operations whose handlers land with later work; they answer 501 until then.
NOT_BUILT: set[str] = set()


def _ids(entry: tuple[str, str, dict[str, Any]]) -> str:
    return entry[2]["operationId"]


def test_document_is_valid_openapi_3_0() -> None:
    validate(SPEC)

    assert SPEC["openapi"].startswith("3.0.")


def test_operation_ids_are_unique() -> None:
    ids = [operation["operationId"] for _, _, operation in OPERATIONS]

    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("entry", OPERATIONS, ids=_ids)
def test_every_operation_is_documented_completely(entry) -> None:
    path, method, operation = entry

    assert operation.get("summary"), f"{method} {path} has no summary"
    assert len(operation.get("tags", [])) == 1
    for status, response in operation["responses"].items():
        response = _deref(response)
        if status == "204":
            assert "content" not in response
            continue
        assert list(response["content"]) == ["application/json"], (method, path, status)
        assert "schema" in response["content"]["application/json"]
        assert "X-Request-ID" in response.get("headers", {}), (method, path, status)
    if "requestBody" in operation:
        for media in _deref(operation["requestBody"])["content"].values():
            assert "example" in media or "examples" in media, (method, path)


@pytest.mark.parametrize("entry", OPERATIONS, ids=_ids)
def test_every_built_operation_has_a_handler(entry) -> None:
    _, _, operation = entry
    operation_id = operation["operationId"]
    module_name = f"palo_api.handlers.{operation['tags'][0]}"
    module = (
        importlib.import_module(module_name)
        if importlib.util.find_spec(module_name)
        else None
    )

    # A handler that exists must not hide in NOT_BUILT, and vice versa.
    has_handler = callable(getattr(module, operation_id, None))
    assert has_handler is (operation_id not in NOT_BUILT)


def _client_strings() -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for name, schema in SPEC["components"]["schemas"].items():
        if not name.endswith(("Create", "Update", "Request", "Form")):
            continue
        for prop, sub in schema.get("properties", {}).items():
            if (
                sub.get("type") == "string"
                and "enum" not in sub
                and "format" not in sub
            ):
                found.append((name, prop, sub))
    return found


@pytest.mark.parametrize(
    ("schema", "prop", "sub"),
    _client_strings(),
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_every_free_text_field_refuses_nul_and_has_a_length_limit(
    schema, prop, sub
) -> None:
    # PostgreSQL text columns cannot hold NUL; saying so in the document lets
    # clients and fuzzers see the rule instead of meeting a surprise 422.
    assert "\\x00" in sub.get("pattern", ""), f"{schema}.{prop}"
    assert "maxLength" in sub, f"{schema}.{prop}"


def _patterns(node: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(node, dict):
        found = (
            [(path, node["pattern"])] if isinstance(node.get("pattern"), str) else []
        )
        for key, value in node.items():
            found += _patterns(value, f"{path}/{key}")
        return found
    if isinstance(node, list):
        return [
            p for i, item in enumerate(node) for p in _patterns(item, f"{path}/{i}")
        ]
    return []


@pytest.mark.parametrize(("path", "pattern"), _patterns(SPEC), ids=lambda v: v)
def test_patterns_mean_the_same_to_every_regex_dialect(path, pattern) -> None:
    # JSON Schema patterns are ECMA-262; the server checks them with Python's
    # re. Their shorthand classes differ (Python's \s takes \x1c-\x1f, ECMA's
    # takes \ufeff), so a client or fuzzer would build bodies the server
    # refuses. Explicit character classes mean the same to both.
    import re

    shorthand = re.findall(r"\\[sSdDwWbB]", pattern)
    assert shorthand == [], f"{path} uses {shorthand}"


@pytest.mark.parametrize(
    ("path", "pattern"),
    [(p, v) for p, v in _patterns(SPEC) if "/schemas/" in p and "/Error/" not in p],
    ids=lambda v: v,
)
def test_every_request_pattern_is_explained_in_words(path, pattern) -> None:
    from palo_api.validation import PATTERN_MESSAGES

    assert pattern in PATTERN_MESSAGES, path


def test_not_blank_pattern_counts_whitespace_as_strip_does() -> None:
    import re

    pattern = re.compile(SPEC["components"]["schemas"]["TicketCreate"]["properties"][
        "title"]["pattern"])  # fmt: skip
    for code in range(0x3100):
        char = chr(code)
        if char == "\x00":
            continue
        assert (pattern.match(char) is None) is (char.strip() == ""), hex(code)


def test_server_serves_the_document_as_json_and_yaml(client) -> None:
    as_json = client.get("/v1/openapi.json")
    as_yaml = client.get("/v1/openapi.yaml")
    ui = client.get("/v1/ui/")

    assert as_json.status_code == 200
    assert as_json.json() == public_document(SPEC)
    assert as_yaml.status_code == 200
    assert "openapi: 3.0" in as_yaml.text
    assert ui.status_code == 200
    assert "swagger" in ui.text.lower()


def test_served_document_keeps_named_schemas_and_hides_server_hooks(client) -> None:
    served = client.get("/v1/openapi.json").text

    # SDK generators name their types after the $ref'd components.
    assert '"$ref": "#/components/schemas/Project"' in served
    assert "palo_api" not in served
    assert "InfoFunc" not in served


def _deref(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        *_, section, name = node["$ref"].split("/")
        node = SPEC["components"][section][name]
    return node


def test_contract_run_excludes_exactly_the_operations_not_built() -> None:
    import re
    import tomllib

    from tests.conftest import REPO_ROOT

    config = tomllib.loads((REPO_ROOT / "schemathesis.toml").read_text())
    disabled = [
        rule["include-operation-id-regex"]
        for rule in config.get("operations", [])
        if rule.get("enabled") is False
    ]
    all_ids = {operation["operationId"] for _, _, operation in OPERATIONS}

    excluded = {i for i in all_ids if any(re.fullmatch(p, i) for p in disabled)}
    assert excluded == NOT_BUILT


def _open_objects_in_responses() -> list[str]:
    """Object schemas reachable from a response that leave extra fields unsaid."""
    found: list[str] = []
    seen: set[str] = set()

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict) and "$ref" in node:
            if node["$ref"] not in seen:
                seen.add(node["$ref"])
                walk(_deref(node), node["$ref"])
            return
        if isinstance(node, dict):
            if node.get("type") == "object" and "additionalProperties" not in node:
                found.append(where)
            for key, value in node.items():
                if key not in ("example", "examples", "links"):
                    walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{where}/{i}")

    for path, method, operation in OPERATIONS:
        for status, response in operation["responses"].items():
            walk(response, f"{method} {path} {status}")
    return found


def test_every_response_object_says_whether_it_takes_other_fields() -> None:
    # An OpenAPI object takes any extra field unless it says otherwise. Saying
    # it lets the tests' response check (tests/response_check.py) and
    # Schemathesis refuse a field the server sends and the document lacks.
    assert _open_objects_in_responses() == []


def test_every_narrowing_of_the_contract_run_gives_its_reason() -> None:
    from tests.conftest import REPO_ROOT

    lines = (REPO_ROOT / "schemathesis.toml").read_text().splitlines()
    tables = [
        i
        for i, line in enumerate(lines)
        if line.startswith(("[[operations]]", "[checks.", "[phases."))
    ]

    # Each table that narrows the run follows a comment that says why.
    assert tables
    for i in tables:
        assert lines[i - 1].startswith("#"), f"no reason above {lines[i]!r}"


# Checks that schemathesis.toml turns off for some operations, with its reasons.
CONTRACT_EXCEPTIONS = {
    "use_after_free": {"get_project", "update_project", "list_project_members"},
}


def test_contract_run_keeps_every_check_but_the_written_exceptions(
    monkeypatch,
) -> None:
    import schemathesis
    from schemathesis.checks import CHECKS
    from schemathesis.config import SchemathesisConfig

    from tests.conftest import REPO_ROOT

    monkeypatch.setenv("PALO_CONTRACT_CLIENT_ID", "id")
    monkeypatch.setenv("PALO_CONTRACT_CLIENT_SECRET", "secret")
    config = SchemathesisConfig.from_path(str(REPO_ROOT / "schemathesis.toml"))
    project = config.projects.default
    schema = schemathesis.openapi.from_dict(SPEC, config=config)

    off = {}
    for path, method, operation in OPERATIONS:
        found = schema.find_operation_by_label(f"{method.upper()} {path}")
        for phase in ("examples", "coverage", "fuzzing", "stateful"):
            checks = project.checks_config_for(operation=found, phase=phase)
            for name in CHECKS.get_all_names():
                if not checks.get_by_name(name=name).enabled:
                    off.setdefault(name, set()).add(operation["operationId"])

    assert off == CONTRACT_EXCEPTIONS
