"""The `palo` command: admin commands print one JSON object, bad input fails."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from palo_api.cli import cli
from tests.conftest import TEST_SIGNING_KEYS, assert_error


@pytest.fixture
def palo(monkeypatch: pytest.MonkeyPatch, database_url: str):
    monkeypatch.setenv("PALO_DATABASE_URL", database_url)
    monkeypatch.setenv("PALO_SIGNING_KEYS", TEST_SIGNING_KEYS)
    monkeypatch.setenv("PALO_LOG_LEVEL", "WARNING")
    runner = CliRunner()

    def run(*args: str, ok: bool = True) -> Any:
        result = runner.invoke(cli, list(args))
        if ok:
            assert result.exit_code == 0, result.output
            return json.loads(result.stdout)
        assert result.exit_code != 0
        return result

    return run


def test_admin_commands_create_a_working_client(palo, client) -> None:
    org = palo("admin", "create-org", "--name", "Acme", "--plan", "business")
    email = f"{uuid.uuid4().hex}@acme.io"
    user = palo(
        "admin", "create-user", "--org", org["id"], "--email", email,
        "--name", "Ada", "--org-role", "admin",
    )  # fmt: skip
    created = palo("admin", "create-client", "--user", user["id"], "--name", "ci")

    assert set(org) == {"id", "name", "plan"}
    assert org["plan"] == "business"
    assert set(user) == {"id", "org_id", "email", "name", "org_role"}
    assert (user["org_id"], user["org_role"]) == (org["id"], "admin")
    assert set(created) == {"client_id", "client_secret", "user_id", "org_id"}
    assert (created["user_id"], created["org_id"]) == (user["id"], org["id"])
    token = client.post(
        "/v1/auth/token",
        json={
            "client_id": created["client_id"],
            "client_secret": created["client_secret"],
        },
    )
    assert token.status_code == 200, token.text


def test_set_plan_prints_the_organization(palo) -> None:
    org = palo("admin", "create-org", "--name", "Acme", "--plan", "starter")

    moved = palo("admin", "set-plan", "--org", org["id"], "--plan", "enterprise")

    assert moved == {**org, "plan": "enterprise"}


def test_disable_client_refuses_its_tokens_at_once(palo, client, factory) -> None:
    account = factory.account()
    assert client.get("/v1/projects", headers=account.headers).status_code == 200

    disabled = palo("admin", "disable-client", "--client", account.client_id)

    assert disabled["client_id"] == account.client_id
    assert disabled["disabled_at"] is not None
    assert "client_secret" not in disabled
    assert "secret_hash" not in disabled
    refused = client.get("/v1/projects", headers=account.headers)
    assert_error(refused, 401, "invalid_token")


@pytest.mark.parametrize(
    "args",
    [
        ("admin", "create-org", "--name", "X", "--plan", "gold"),
        ("admin", "create-org", "--plan", "business"),
        ("admin", "create-org", "--name", "   ", "--plan", "business"),
        (
            "admin",
            "create-user",
            "--org",
            "not-a-uuid",
            "--email",
            "a@b.c",
            "--name",
            "A",
        ),
        (
            "admin",
            "create-user",
            "--org",
            str(uuid.uuid4()),
            "--email",
            "a@b.c",
            "--name",
            "A",
        ),
        ("admin", "create-client", "--user", str(uuid.uuid4())),
        ("admin", "set-plan", "--org", str(uuid.uuid4()), "--plan", "business"),
        ("admin", "disable-client", "--client", "palo_ci_nope"),
    ],
)
def test_bad_input_exits_non_zero_with_a_message_and_no_json(palo, args) -> None:
    result = palo(*args, ok=False)

    assert result.stdout == ""
    assert result.stderr.strip()


@pytest.mark.parametrize("bad", ["caf\udce9@example.com", "a\x00b@example.com"])
@pytest.mark.parametrize("option", ["--email", "--name"])
def test_text_the_database_cannot_store_is_a_usage_error(palo, option, bad) -> None:
    args = {"--email": "ok@example.com", "--name": "Ok", option: bad}
    org = palo("admin", "create-org", "--name", "Org", "--plan", "business")

    flags = [part for pair in args.items() for part in pair]

    result = palo("admin", "create-user", "--org", org["id"], *flags, ok=False)

    assert result.exit_code == 2, result.output
    assert option in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_create_user_refuses_a_taken_email(palo) -> None:
    org = palo("admin", "create-org", "--name", "Acme", "--plan", "business")
    email = f"{uuid.uuid4().hex}@acme.io"
    palo("admin", "create-user", "--org", org["id"], "--email", email, "--name", "A")

    result = palo(
        "admin",
        "create-user",
        "--org",
        org["id"],
        "--email",
        email,
        "--name",
        "B",
        ok=False,
    )

    assert "already exists" in result.stderr


def test_demo_creates_credentials_once_and_reuses_them(palo, tmp_path: Path) -> None:
    credentials = tmp_path / "demo.json"

    first = palo("admin", "demo", "--credentials-file", str(credentials))
    second = palo("admin", "demo", "--credentials-file", str(credentials))

    assert first == second
    assert credentials.stat().st_mode & 0o077 == 0
    assert json.loads(credentials.read_text()) == first


def test_demo_recreates_credentials_whose_client_is_gone(palo, tmp_path: Path) -> None:
    credentials = tmp_path / "demo.json"
    credentials.write_text(
        json.dumps({"client_id": "palo_ci_gone", "client_secret": "x"})
    )

    created = palo("admin", "demo", "--credentials-file", str(credentials))

    assert created["client_id"] != "palo_ci_gone"
    assert json.loads(credentials.read_text()) == created


def test_bad_setting_stops_with_a_message_naming_it(
    palo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PALO_TOKEN_TTL_SECONDS", "soon")

    result = palo("admin", "create-org", "--name", "X", "--plan", "business", ok=False)

    assert "PALO_TOKEN_TTL_SECONDS" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("admin", "create-org", "--name", "X", "--plan", "business"),
        ("admin", "disable-client", "--client", "palo_ci_nope"),
        ("admin", "demo", "--credentials-file", "demo.json"),
    ],
    ids=["create-org", "disable-client", "demo"],
)
def test_admin_command_on_an_unmigrated_database_says_to_upgrade(
    palo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: tuple[str, ...]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PALO_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")

    result = palo(*args, ok=False)

    assert result.stdout == ""
    assert "palo db upgrade" in result.stderr
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    "args",
    [("admin", "create-org", "--name", "X", "--plan", "business"), ("purge",)],
    ids=["admin", "purge"],
)
def test_command_run_where_there_is_no_database_creates_nothing(
    palo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: tuple[str, ...]
) -> None:
    # As from a directory without var/: the defaults point into it.
    monkeypatch.setenv("PALO_DATABASE_URL", f"sqlite:///{tmp_path / 'var/palo.db'}")
    monkeypatch.setenv("PALO_SIGNING_KEY_FILE", str(tmp_path / "var/signing-key"))
    monkeypatch.delenv("PALO_SIGNING_KEYS", raising=False)

    result = palo(*args, ok=False)

    assert result.stdout == ""
    assert "There is no database at" in result.stderr
    assert "palo db upgrade" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no empty database, no signing key


def test_admin_command_on_an_unreachable_database_says_so(
    palo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "PALO_DATABASE_URL", "postgresql://palo:hunter2@127.0.0.1:1/nowhere"
    )

    result = palo("admin", "create-org", "--name", "X", "--plan", "business", ok=False)

    assert result.stdout == ""
    assert "Cannot reach the database" in result.stderr
    assert "hunter2" not in result.stderr
    assert isinstance(result.exception, SystemExit)


def test_upgrade_then_admin_command_works_on_a_new_database(
    palo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PALO_DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")

    upgraded = CliRunner().invoke(cli, ["db", "upgrade"])
    org = palo("admin", "create-org", "--name", "New", "--plan", "business")

    assert upgraded.exit_code == 0, upgraded.output
    assert org["name"] == "New"
