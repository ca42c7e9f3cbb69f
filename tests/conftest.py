"""Shared fixtures: one app per test session, one organization per test.

The database comes from ``PALO_TEST_DATABASE_URL`` (a fresh SQLite file by
default). Each test builds its own organization through the factories below,
so tests never see each other's rows and need no cleanup.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from palo_api.app import create_app
from palo_api.config import Settings
from palo_api.db import migrate
from palo_api.db.engine import Database, normalise_url
from palo_api.db.models import LoginThrottle, ProjectMember
from palo_api.runtime import Runtime
from palo_api.services import admin
from tests.response_check import ResponseChecker

TEST_SIGNING_KEYS = "test-1:" + "k" * 40


def _reset_database(url: str) -> None:
    """Drop everything in a PostgreSQL test database; SQLite files start empty."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        return
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP SCHEMA public CASCADE"))
        connection.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    import os

    url = os.environ.get("PALO_TEST_DATABASE_URL")
    if not url:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'palo-test.db'}"
    _reset_database(url)
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings.from_env(
        {
            "PALO_DATABASE_URL": database_url,
            "PALO_SIGNING_KEYS": TEST_SIGNING_KEYS,
            # The test client checks every response against the document
            # (tests/response_check.py), error responses and headers included.
            # Connexion's own check would turn a bad body into a 500 first,
            # which the document declares, and hide what was wrong.
            "PALO_VALIDATE_RESPONSES": "false",
            "PALO_MAX_BODY_BYTES": str(64 * 1024),
        }
    )


@pytest.fixture(scope="session")
def runtime(settings: Settings) -> Iterator[Runtime]:
    """A runtime beside the app's, for arranging data and inspecting rows."""
    rt = Runtime.from_settings(settings)
    yield rt
    rt.database.dispose()


@pytest.fixture(scope="session")
def app(settings: Settings) -> Any:
    return create_app(settings)


@pytest.fixture(scope="session")
def response_checker() -> ResponseChecker:
    return ResponseChecker()


@pytest.fixture(scope="session")
def client(app: Any, response_checker: ResponseChecker) -> Iterator[TestClient]:
    """The test client; every response it receives must match the document."""
    with app.test_client() as test_client:
        test_client.event_hooks = {"response": [response_checker]}
        yield test_client


@dataclass
class Account:
    """A user with API credentials and a token, inside one organization."""

    org_id: uuid.UUID
    user_id: uuid.UUID
    client_id: str
    client_secret: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Factory:
    """Builds organizations and accounts directly through the services."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def org(self, plan: str = "enterprise") -> uuid.UUID:
        with self.runtime.database.write() as session:
            return admin.create_org(session=session, name="Test org", plan=plan).id

    def account(
        self, org_id: uuid.UUID | None = None, *, org_role: str = "member"
    ) -> Account:
        org_id = org_id or self.org()
        with self.runtime.database.write() as session:
            user = admin.create_user(
                session=session,
                org_id=org_id,
                email=f"{uuid.uuid4().hex}@example.com",
                name="Test User",
                org_role=org_role,
            )
            created = admin.create_client(
                session=session, hasher=self.runtime.hasher, user_id=user.id, name=None
            )
        token = self.runtime.tokens.issue(
            user_id=user.id, org_id=org_id, client_id=created.client.client_id
        ).access_token
        return Account(
            org_id=org_id,
            user_id=user.id,
            client_id=created.client.client_id,
            client_secret=created.secret,
            token=token,
        )

    def project(
        self, client: TestClient, owner: Account, **fields: Any
    ) -> dict[str, Any]:
        body = {"name": "Project " + uuid.uuid4().hex[:6], **fields}
        response = client.post("/v1/projects", json=body, headers=owner.headers)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    def ticket(
        self, client: TestClient, reporter: Account, project_id: str, **fields: Any
    ) -> dict[str, Any]:
        body = {"title": "Ticket " + uuid.uuid4().hex[:6], "project_id": project_id}
        response = client.post(
            "/v1/tickets", json={**body, **fields}, headers=reporter.headers
        )
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    def add_member(self, project_id: str, account: Account, role: str) -> None:
        """Make ``account`` a member of a project, directly in the database."""
        with self.runtime.database.write() as session:
            session.add(
                ProjectMember(
                    project_id=uuid.UUID(project_id), user_id=account.user_id, role=role
                )
            )
            session.commit()


@pytest.fixture(scope="session")
def factory(runtime: Runtime) -> Factory:
    return Factory(runtime)


@pytest.fixture
def admin_account(factory: Factory) -> Account:
    """An organization admin in a fresh organization."""
    return factory.account(org_role="admin")


@pytest.fixture
def member_account(factory: Factory, admin_account: Account) -> Account:
    """A plain member of the same organization as ``admin_account``."""
    return factory.account(admin_account.org_id)


@pytest.fixture
def outsider(factory: Factory) -> Account:
    """An organization admin of another organization."""
    return factory.account(org_role="admin")


def backend_pid(database: Database) -> int:
    """The PostgreSQL session of the connection ``database`` pools next."""
    with database.read() as session:
        pid: int = session.scalar(sa.text("SELECT pg_backend_pid()"))
        return pid


def terminate_backend(url: str, pid: int) -> None:
    """Close a PostgreSQL session from the server's side, as a restart would."""
    engine = sa.create_engine(normalise_url(url))
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}
            )
    finally:
        engine.dispose()


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """Check the specification's error format, status, code and request id."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["error"] == code, body
    assert isinstance(body["message"], str)
    assert body["message"]
    assert body["request_id"] == response.headers["x-request-id"]
    uuid.UUID(body["request_id"])
    assert set(body) <= {"error", "message", "request_id", "details"}
    return body


REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _forget_failed_logins(request: pytest.FixtureRequest) -> None:
    """Start each test that calls the API without earlier tests' login failures.

    Every test client calls from the same address, so failures of earlier
    tests would otherwise add up to that address's limit.
    """
    if "client" not in request.fixturenames and "app" not in request.fixturenames:
        return
    runtime: Runtime = request.getfixturevalue("runtime")
    with runtime.database.write() as session:
        session.execute(sa.delete(LoginThrottle))
        session.commit()
