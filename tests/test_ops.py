"""What operators rely on, in one process: health, readiness, metrics, the
request log, masked credentials, and the configuration reference."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from palo_api import logs
from palo_api.app import create_app
from palo_api.config import ConfigError, Settings
from palo_api.db import migrate
from palo_api.db.models import OutboxEvent
from palo_api.runtime import Runtime
from palo_api.services import projects as project_service
from palo_api.services import quotas
from tests.conftest import (
    REPO_ROOT,
    TEST_SIGNING_KEYS,
    Account,
    Factory,
    assert_error,
)
from tests.test_access_matrix import NOT_BUILT, TABLE, build_world, send
from tests.test_quotas import set_used, used_today

# --- Health and readiness ----------------------------------------------------


def test_health_and_readiness_answer_without_credentials(client: TestClient) -> None:
    health = client.get("/healthz")
    ready = client.get("/readyz")

    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    for response in (health, ready):
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-request-id"]


def test_operational_endpoints_are_never_counted_against_the_quota(
    client: TestClient, runtime: Runtime, factory: Factory
) -> None:
    business = factory.account(factory.org("business"), org_role="admin")
    set_used(runtime, business.org_id, 999)

    for path in ("/healthz", "/readyz", "/metrics") * 3:
        response = client.get(path, headers=business.headers)
        assert response.status_code == 200, path
        assert "x-ratelimit-remaining" not in response.headers

    assert used_today(runtime, business.org_id) == 999
    # The one request left today is still there.
    assert client.get("/v1/projects", headers=business.headers).status_code == 200
    assert client.get("/v1/projects", headers=business.headers).status_code == 429


def _app_on(path: Path) -> TestClient:
    settings = Settings.from_env(
        {
            "PALO_DATABASE_URL": f"sqlite:///{path}",
            "PALO_SIGNING_KEYS": TEST_SIGNING_KEYS,
        }
    )
    return create_app(settings).test_client()


def _set_revision(path: Path, revision: str) -> None:
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision}
        )
    engine.dispose()


def test_readiness_follows_the_schema_this_release_needs(tmp_path: Path) -> None:
    empty, migrated = tmp_path / "empty.db", tmp_path / "migrated.db"
    migrate.upgrade(f"sqlite:///{migrated}")

    with _app_on(empty) as client:
        unmigrated = client.get("/readyz")
        health = client.get("/healthz")
    with _app_on(migrated) as client:
        current = client.get("/readyz")
        # A newer release ran its migrations first (a rolling upgrade):
        # this one goes on serving.
        _set_revision(migrated, "9999_from_a_newer_release")
        ahead = client.get("/readyz")
        _set_revision(migrated, "0001")
        behind = client.get("/readyz")

    body = assert_error(unmigrated, 503, "service_unavailable")
    assert "palo db upgrade" in body["message"]
    assert unmigrated.headers["retry-after"] == "1"
    assert health.status_code == 200
    assert (current.status_code, ahead.status_code) == (200, 200)
    assert_error(behind, 503, "service_unavailable")


def test_a_database_that_hangs_makes_probes_answer_within_their_deadline(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from palo_api import app as app_module
    from palo_api.services import monitoring

    def hangs(*_args: Any, **_kwargs: Any) -> Any:
        time.sleep(1.5)
        raise AssertionError("the probe should have given up")

    monkeypatch.setattr(app_module, "PROBE_SECONDS", 0.2)
    monkeypatch.setattr(monitoring, "readiness", hangs)
    monkeypatch.setattr(monitoring, "webhook_backlog", hangs)
    started = time.monotonic()

    ready = client.get("/readyz")
    scraped = client.get("/metrics")

    assert time.monotonic() - started < 1.4
    assert_error(ready, 503, "service_unavailable")
    assert scraped.status_code == 200
    assert sample(scraped.text, "palo_database_up") == 0
    assert sample(scraped.text, "palo_http_requests_total", route="/readyz") > 0


def test_serve_refuses_a_database_without_this_releases_migrations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from palo_api import cli

    empty = tmp_path / "empty.db"
    sa.create_engine(f"sqlite:///{empty}").connect().close()
    monkeypatch.setattr(cli.os, "execvp", _must_not_start)

    result = CliRunner().invoke(
        cli.cli,
        ["serve", "--port", "8999"],
        env={
            "PALO_DATABASE_URL": f"sqlite:///{empty}",
            "PALO_SIGNING_KEYS": TEST_SIGNING_KEYS,
        },
    )

    assert result.exit_code == 1
    assert "palo db upgrade" in result.output


def _must_not_start(*_args: Any) -> None:
    raise AssertionError("gunicorn started")


@pytest.fixture(scope="module")
def unreachable() -> Iterator[TestClient]:
    """An app whose PostgreSQL refuses connections (nothing listens on port 9)."""
    settings = Settings.from_env(
        {
            "PALO_DATABASE_URL": "postgresql://postgres@127.0.0.1:9/palo",
            "PALO_SIGNING_KEYS": TEST_SIGNING_KEYS,
        }
    )
    with create_app(settings).test_client() as client:
        yield client


def test_an_unreachable_database_is_a_503_and_not_ready(
    unreachable: TestClient, runtime: Runtime
) -> None:
    token = runtime.tokens.issue(
        user_id=uuid.uuid4(), org_id=uuid.uuid4(), client_id="palo_ci_x"
    ).access_token

    api = unreachable.get("/v1/projects", headers={"Authorization": f"Bearer {token}"})
    ready = unreachable.get("/readyz")
    health = unreachable.get("/healthz")
    scrape = unreachable.get("/metrics")

    assert_error(api, 503, "service_unavailable")
    assert api.headers["retry-after"] == "1"
    body = assert_error(ready, 503, "service_unavailable")
    assert "database" in body["message"]
    assert health.status_code == 200
    assert scrape.status_code == 200
    assert sample(scrape.text, "palo_database_up") == 0


# --- Metrics -----------------------------------------------------------------


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in an exposition, 0 when absent."""
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and all(
                item.labels.get(k) == v for k, v in labels.items()
            ):
                return float(item.value)
    return 0.0


def scrape(client: TestClient) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def test_requests_are_counted_by_route_template_and_status(
    client: TestClient, admin_account: Account
) -> None:
    route = {"method": "GET", "route": "/v1/projects/{project_id}", "status": "404"}
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    before = scrape(client)

    for _ in range(3):
        missing = f"/v1/projects/{uuid.uuid4()}"
        assert client.get(missing, headers=admin_account.headers).status_code == 404
    client.get(f"/v1/nothing-here/{uuid.uuid4()}")
    client.request("PROPFIND", "/healthz")
    after = scrape(client)

    counted = "palo_http_requests_total"
    timed = "palo_http_request_duration_seconds_count"
    other = {"method": "other", "route": "/healthz", "status": "405"}
    assert sample(after, counted, **other) - sample(before, counted, **other) == 1
    assert 'method="PROPFIND"' not in after
    assert sample(after, counted, **route) - sample(before, counted, **route) == 3
    assert sample(after, timed, **route) - sample(before, timed, **route) == 3
    assert (
        sample(after, counted, **unmatched) - sample(before, counted, **unmatched) == 1
    )
    # No raw path becomes a label: clients would choose the series.
    assert "/v1/projects/" + "0" not in after
    assert "nothing-here" not in after


def test_quota_rejections_and_tokens_are_counted(
    client: TestClient,
    runtime: Runtime,
    factory: Factory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    business = factory.account(factory.org("business"))
    starter = factory.account(factory.org("starter"))
    set_used(runtime, business.org_id, quotas.daily_limit("business") or 0)
    before = scrape(client)

    assert client.get("/v1/projects", headers=business.headers).status_code == 429
    assert client.get("/v1/projects", headers=starter.headers).status_code == 429
    good = {"client_id": business.client_id, "client_secret": business.client_secret}
    issued = client.post("/v1/auth/token", json=good)
    assert issued.status_code == 200
    bad = {**good, "client_secret": "wrong-" + business.client_secret}
    assert client.post("/v1/auth/token", json=bad).status_code == 401
    garbage = {"Authorization": "Bearer not.a.token"}
    assert client.get("/v1/projects", headers=garbage).status_code == 401
    after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    rejected = "palo_quota_rejections_total"
    assert grew(rejected, plan="business", reason="quota_exceeded") == 1
    assert grew(rejected, plan="starter", reason="no_api_access") == 1
    assert grew("palo_tokens_issued_total", grant="client_credentials") == 1
    assert grew("palo_token_failures_total", reason="invalid_client") == 1
    assert grew("palo_token_failures_total", reason="invalid_token") == 1


def test_the_outbox_backlog_is_read_from_the_database_at_each_scrape(
    client: TestClient, runtime: Runtime, admin_account: Account
) -> None:
    def pending_in_database() -> int:
        with runtime.database.read() as session:
            query = sa.select(sa.func.count()).where(
                OutboxEvent.dispatched_at.is_(None)
            )
            return int(session.scalar(query) or 0)

    first = scrape(client)
    assert sample(first, "palo_database_up") == 1
    assert sample(first, "palo_outbox_pending_events") == pending_in_database()

    # Creating a project commits a project.created event for the worker.
    response = client.post(
        "/v1/projects", json={"name": "Backlog"}, headers=admin_account.headers
    )
    assert response.status_code == 201
    second = scrape(client)

    assert sample(second, "palo_outbox_pending_events") == pending_in_database()
    assert sample(second, "palo_outbox_pending_events") >= 1
    assert sample(second, "palo_outbox_lag_seconds") > 0


# --- The request log ----------------------------------------------------------


def request_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "palo_api.requests"]


def test_each_request_has_one_line_with_its_route_caller_and_duration(
    client: TestClient, admin_account: Account, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="palo_api.requests")
    missing = uuid.uuid4()

    response = client.get(f"/v1/projects/{missing}", headers=admin_account.headers)

    (record,) = request_records(caplog)
    fields: dict[str, Any] = record.fields  # type: ignore[attr-defined]
    assert record.levelno == logging.INFO
    assert fields["method"] == "GET"
    assert fields["route"] == "/v1/projects/{project_id}"
    assert fields["path"] == f"/v1/projects/{missing}"
    assert fields["status"] == 404
    assert fields["org_id"] == str(admin_account.org_id)
    assert fields["client_id"] == admin_account.client_id
    assert 0 < fields["duration_ms"] < 10_000
    rendered = logs.formatter("json").format(record)
    assert json.loads(rendered)["request_id"] == response.headers["x-request-id"]


def test_a_failed_token_request_is_logged_under_the_client_it_named(
    client: TestClient, admin_account: Account, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="palo_api.requests")
    body = {"client_id": admin_account.client_id, "client_secret": "x" * 20}

    assert client.post("/v1/auth/token", json=body).status_code == 401

    (record,) = request_records(caplog)
    fields: dict[str, Any] = record.fields  # type: ignore[attr-defined]
    assert (fields["route"], fields["status"]) == ("/v1/auth/token", 401)
    assert fields["client_id"] == admin_account.client_id


def test_a_server_error_is_logged_at_error_with_its_traceback(
    client: TestClient,
    admin_account: Account,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(**_kwargs: Any) -> Any:
        raise RuntimeError("the list broke")

    monkeypatch.setattr(project_service, "list_projects", broken)
    caplog.set_level(logging.INFO)

    response = client.get("/v1/projects", headers=admin_account.headers)

    assert_error(response, 500, "internal_error")
    (record,) = request_records(caplog)
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    rendered = json.loads(logs.formatter("json").format(record))
    assert "RuntimeError: the list broke" in rendered["exception"]
    assert rendered["status"] == 500
    # The traceback is told once, with the request, not again on its own.
    assert [r for r in caplog.records if r.exc_info] == [record]


def test_probes_and_scrapes_are_logged_only_at_debug(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="palo_api.requests")
    for path in ("/healthz", "/readyz", "/metrics"):
        client.get(path)
    assert request_records(caplog) == []

    caplog.set_level(logging.DEBUG, logger="palo_api.requests")
    client.get("/healthz")
    (record,) = request_records(caplog)
    assert record.fields["route"] == "/healthz"  # type: ignore[attr-defined]


# --- Credentials never reach a log --------------------------------------------


JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXBhcnQ"


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_credentials_are_masked_in_messages_and_fields(log_format: str) -> None:
    record = logging.LogRecord(
        "palo_api.test",
        logging.WARNING,
        __file__,
        1,
        "refused %s and Bearer %s and xpalo_cs_%s and whsec_%s",
        (JWT, "abcdefghijklmnop", "S3cr3tS3cr3t", "oS+Xti0xJaud/rR+0sVzAZNE6NN="),
        None,
    )
    record.fields = {"authorization": "Basic dXNlcjpwYXNz", "client_id": "palo_ci_1"}

    rendered = logs.formatter(log_format).format(record)

    for secret in (JWT, "abcdefghijklmnop", "S3cr3tS3cr3t", "oS+Xti0x", "dXNlcjpw"):
        assert secret not in rendered
    assert "palo_ci_1" in rendered
    assert rendered.count(logs.MASK) == 5


def test_every_webhook_secret_shape_is_masked() -> None:
    from palo_api.services.signing import new_secret

    for _ in range(2000):
        secret = new_secret()
        assert logs.SECRET_TEXT.sub("", f"a{secret} b") == "a b", secret


FORGERIES = [
    "/v1/x\n2026-01-01T00:00:00Z [error    ] FORGED [palo_api.requests]",
    '/v1/x\r\n{"event": "FORGED", "level": "error"}',
    "/v1/x\x1b[2J\x1b[31mred",
    "/v1/x\u2028FORGED\u0085FORGED\x0bFORGED\x0cFORGED",
]


@pytest.mark.parametrize("path", FORGERIES)
@pytest.mark.parametrize("log_format", ["json", "text"])
def test_a_client_cannot_forge_a_line_or_drive_a_terminal(
    path: str, log_format: str
) -> None:
    record = logging.LogRecord(
        "palo_api.requests", logging.INFO, __file__, 1, "GET %s %d", (path, 404), None
    )
    record.fields = {"path": path, "client_id": "palo_ci_\x1b[31m\nFORGED"}

    rendered = logs.formatter(log_format).format(record)

    assert len(rendered.splitlines()) == 1
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in rendered)
    assert "\u2028" not in rendered
    if log_format == "json":
        assert json.loads(rendered)["path"] == path


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_both_formats_write_the_traceback(log_format: str) -> None:
    try:
        raise RuntimeError(f"refused {JWT}")
    except RuntimeError:
        record = logging.LogRecord(
            "palo_api.requests", logging.ERROR, __file__, 1, "boom", (), sys.exc_info()
        )

    rendered = logs.formatter(log_format).format(record)

    assert "Traceback (most recent call last)" in rendered
    assert "RuntimeError: refused [redacted]" in rendered
    assert JWT not in rendered


@pytest.fixture
def every_log_line() -> Iterator[io.StringIO]:
    """Everything logged at DEBUG, by any logger, rendered as in production."""
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(logs.formatter("json"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield sink
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_no_credential_is_logged_over_a_run_of_every_operation(
    client: TestClient,
    factory: Factory,
    every_log_line: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = build_world(client, factory)
    me = world.callers["admin"]
    secrets = {me.token, me.client_secret}
    # Bodies and headers that carry credentials, each seen once in a log
    # line would be a leak: tokens, client secrets, webhook secrets.
    last = ("remove_project_member", "archive_project")
    order = sorted(
        set(TABLE) - NOT_BUILT,
        key=lambda op: (last.index(op) if op in last else -1, TABLE[op].fresh, op),
    )
    statuses, request_ids = {}, []
    for operation_id in order:
        response = send(client, TABLE[operation_id].build(world, me), me)
        statuses[operation_id] = response.status_code
        request_ids.append(response.headers["x-request-id"])
        if response.headers.get("content-type") == "application/json":
            secrets |= set(_credentials_in(response.json()))
    # A failing request logs its traceback, whose message here quotes a token.
    monkeypatch.setattr(project_service, "list_projects", _fails_quoting(me.token))
    failed = client.get("/v1/projects", headers=me.headers)
    assert failed.status_code == 500
    request_ids.append(failed.headers["x-request-id"])

    assert statuses == {op: TABLE[op].expected["admin"] for op in order}
    lines = [json.loads(line) for line in every_log_line.getvalue().splitlines()]
    requests = [line for line in lines if line["logger"] == "palo_api.requests"]
    for request_id in request_ids:
        assert [r["request_id"] for r in requests].count(request_id) == 1
    assert "RuntimeError" in requests[-1]["exception"]
    assert any(secret.startswith("whsec_") for secret in secrets)
    assert any(secret.startswith("eyJ") for secret in secrets)
    text = every_log_line.getvalue()
    for secret in secrets:
        assert secret not in text


def _fails_quoting(token: str) -> Any:
    def list_projects(**_kwargs: Any) -> Any:
        raise RuntimeError("refused Authorization: Bearer " + token)

    return list_projects


def _credentials_in(body: Any) -> Iterator[str]:
    if isinstance(body, dict):
        for key, value in body.items():
            if key in ("access_token", "refresh_token", "secret", "client_secret"):
                if isinstance(value, str):
                    yield value
            else:
                yield from _credentials_in(value)
    elif isinstance(body, list):
        for item in body:
            yield from _credentials_in(item)


# --- Configuration --------------------------------------------------------------


def settings_read_by_the_code() -> set[str]:
    names: set[str] = set()
    for path in (REPO_ROOT / "palo_api").rglob("*.py"):
        names |= set(re.findall(r"\"(PALO_[A-Z0-9_]+)\"", path.read_text()))
    return names


def settings_in_the_readme() -> set[str]:
    readme = (REPO_ROOT / "README.md").read_text()
    return set(re.findall(r"^\| `(PALO_[A-Z0-9_]+)` \|", readme, re.MULTILINE))


def test_the_readme_table_lists_every_setting_and_nothing_else() -> None:
    read = settings_read_by_the_code()
    assert len(read) > 15
    assert settings_in_the_readme() == read


BAD_VALUES = {
    "PALO_DATABASE_URL": "mysql://root@localhost/palo",
    "PALO_SIGNING_KEYS": "short:abc",
    "PALO_TOKEN_TTL_SECONDS": "forever",
    "PALO_REFRESH_MAX_AGE_SECONDS": "10",
    "PALO_TOKEN_LEEWAY_SECONDS": "-1",
    "PALO_MAX_BODY_BYTES": "1e6",
    "PALO_HEAD_TIMEOUT_SECONDS": "0",
    "PALO_VALIDATE_RESPONSES": "maybe",
    "PALO_LOG_LEVEL": "LOUD",
    "PALO_LOG_FORMAT": "xml",
    "PALO_ENV": "staging",
    "PALO_LOGIN_MAX_FAILURES": "0",
    "PALO_LOGIN_MAX_FAILURES_PER_ADDRESS": "many",
    "PALO_LOGIN_WINDOW_SECONDS": "1.5",
    "PALO_TRUSTED_PROXIES": "10.0.0.0/8,proxy.example",
    "PALO_WEBHOOK_ALLOW_PRIVATE_TARGETS": "sometimes",
    "PALO_METRICS_DIR": str(REPO_ROOT / "README.md"),
    "PALO_SIGNING_KEY_FILE": str(REPO_ROOT),
    "PALO_TOKEN_ISSUER": "",
}


MORE_BAD_VALUES = [
    ("PALO_SIGNING_KEY_FILE", str(REPO_ROOT / "README.md" / "signing-key")),
    ("PALO_SIGNING_KEY_FILE", str(REPO_ROOT / "README.md")),
    ("PALO_SIGNING_KEY_FILE", ""),
    ("PALO_TOKEN_ISSUER", " https://api.palo.io"),
    ("PALO_METRICS_DIR", "/dev/null"),
]


def test_every_setting_has_a_bad_value_tried() -> None:
    assert set(BAD_VALUES) == settings_read_by_the_code()


@pytest.mark.parametrize(
    ("name", "value"), sorted(BAD_VALUES.items()) + MORE_BAD_VALUES
)
def test_a_bad_value_stops_start_up_naming_its_setting(name: str, value: str) -> None:
    environ = {"PALO_SIGNING_KEYS": TEST_SIGNING_KEYS, name: value}
    if name == "PALO_SIGNING_KEY_FILE":
        del environ["PALO_SIGNING_KEYS"]

    with pytest.raises(ConfigError, match=name):
        Settings.from_env(environ)


def test_production_refuses_the_development_signing_key(tmp_path: Path) -> None:
    key_file = str(tmp_path / "signing-key")
    development = Settings.from_env(
        {"PALO_ENV": "production", "PALO_SIGNING_KEY_FILE": key_file}
    )
    with pytest.raises(ConfigError, match="PALO_SIGNING_KEYS"):
        development.refuse_development_settings()

    shared = Settings.from_env(
        {"PALO_ENV": "production", "PALO_SIGNING_KEYS": TEST_SIGNING_KEYS}
    )
    shared.refuse_development_settings()
    assert shared.log_format == "json"
    local = Settings.from_env({"PALO_SIGNING_KEY_FILE": key_file})
    local.refuse_development_settings()
    assert local.log_format == "text"


def _a_pid_that_is_gone() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_serve_removes_only_the_metric_files_of_processes_that_are_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from palo_api import cli

    gone = _a_pid_that_is_gone()
    left_over = [f"counter_{gone}.db", f"histogram_{gone}.db", f"gauge_all_{gone}.db"]
    alive = [f"counter_{os.getpid()}.db", f"histogram_{os.getppid()}.db"]
    kept = ["palo.db", "counter.db", "notes.txt", f"counter_{gone}.db.bak", *alive]
    for name in left_over + kept:
        (tmp_path / name).write_text("x")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    settings = Settings.from_env(
        {"PALO_SIGNING_KEYS": TEST_SIGNING_KEYS, "PALO_METRICS_DIR": str(tmp_path)}
    )

    cli._prepare_metrics_dir(settings, 8000)

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)
    assert Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]) == tmp_path
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
