"""A Python client generated from the document works against a running server.

openapi-python-client (installed by ``make tools``, or named by
``PALO_SDK_GENERATOR``) generates a client from ``openapi/palo-v1.yaml`` for
this run; every API call below goes through that client only, as a partner's
code would, against ``palo serve``.
"""

from __future__ import annotations

import base64
import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from palo_api.app import SPEC_PATH
from tests.conftest import REPO_ROOT, Account, Factory
from tests.processes import free_port, start_server, wait_until_up

pytestmark = pytest.mark.slow

GENERATOR = REPO_ROOT / "build" / "sdk-tools" / "bin" / "openapi-python-client"
PACKAGE = "palo_sdk"


@pytest.fixture(scope="module")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The generated package, importable for this module's tests."""
    generator = Path(os.environ.get("PALO_SDK_GENERATOR", GENERATOR))
    if not generator.exists():
        pytest.fail(f"{generator} is missing: `make tools` installs it")
    root = tmp_path_factory.mktemp("sdk")
    # The generator formats its output with the ruff installed beside it.
    env = {**os.environ, "PATH": f"{generator.parent}{os.pathsep}{os.environ['PATH']}"}
    command = [str(generator), "generate", "--path", str(SPEC_PATH), "--meta", "none"]
    generated = subprocess.run(
        [*command, "--output-path", str(root / PACKAGE)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    output = generated.stdout + generated.stderr
    assert generated.returncode == 0, output
    # A warning means part of the document was left out of the client.
    assert "warning" not in output.lower(), output

    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def base_url(database_url: str) -> Iterator[str]:
    port = free_port()
    process = start_server(database_url, port)
    try:
        wait_until_up(port, process)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _sdk(name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_generated_client_runs_a_partners_whole_workflow(
    sdk: ModuleType, base_url: str, factory: Factory
) -> None:
    models = _sdk("models")
    create_token = _sdk("api.auth.create_token")
    create_project = _sdk("api.projects.create_project")
    create_ticket = _sdk("api.tickets.create_ticket")
    list_tickets = _sdk("api.tickets.list_tickets")
    update_ticket = _sdk("api.tickets.update_ticket")
    get_ticket = _sdk("api.tickets.get_ticket")
    create_ticket_comment = _sdk("api.comments.create_ticket_comment")
    account: Account = factory.account(org_role="admin")

    # The OAuth 2.0 client-credentials grant, credentials in HTTP Basic.
    basic = base64.b64encode(
        f"{account.client_id}:{account.client_secret}".encode()
    ).decode()
    with sdk.AuthenticatedClient(
        base_url=base_url, token=basic, prefix="Basic", raise_on_unexpected_status=True
    ) as login:
        token = create_token.sync(
            client=login,
            body=models.TokenForm(
                grant_type=models.TokenFormGrantType.CLIENT_CREDENTIALS
            ),
        )
    assert isinstance(token, models.TokenResponse)

    with sdk.AuthenticatedClient(
        base_url=base_url, token=token.access_token, raise_on_unexpected_status=True
    ) as api:
        project = create_project.sync(
            client=api,
            body=models.ProjectCreate(
                name="SDK project", template=models.ProjectCreateTemplate.SOFTWARE
            ),
        )
        assert isinstance(project, models.Project)
        assert project.created_by == account.user_id

        priorities = ["p1", "p3", "p1", "p2", "p1"]
        created = [
            create_ticket.sync(
                client=api,
                body=models.TicketCreate(
                    title=f"Ticket {n}",
                    project_id=project.id,
                    priority=models.TicketPriority(priority),
                ),
            )
            for n, priority in enumerate(priorities)
        ]
        assert all(isinstance(ticket, models.Ticket) for ticket in created)

        urgent = list_tickets.sync(
            client=api, project_id=project.id, priority=models.TicketPriority.P1
        )
        assert isinstance(urgent, models.TicketList)
        assert [t.id for t in urgent.data] == [
            t.id for t in reversed(created) if t.priority == models.TicketPriority.P1
        ]

        first = created[0]
        changed = update_ticket.sync(
            first.id,
            client=api,
            body=models.TicketUpdate(
                status=models.TicketStatus.RESOLVED, assignee_id=account.user_id
            ),
        )
        assert isinstance(changed, models.Ticket)
        assert changed.status == models.TicketStatus.RESOLVED
        assert changed.resolved_at is not None
        assert changed.assignee_id == account.user_id

        comment = create_ticket_comment.sync(
            first.id,
            client=api,
            body=models.CommentCreate(body=f"Fixed in **1.2**, @{account.user_id}"),
        )
        assert isinstance(comment, models.Comment)
        assert "<strong>1.2</strong>" in comment.body_html
        assert comment.mentions == [account.user_id]

        detail = get_ticket.sync(first.id, client=api)
        assert isinstance(detail, models.TicketDetail)
        assert [event.action.value for event in detail.history] == [
            "ticket.created",
            "ticket.updated",
            "comment.created",
        ]
        assert {change.field for change in detail.history[1].changes} == {
            "status",
            "assignee_id",
        }
        assert [c.id for c in detail.comments] == [comment.id]

        seen = []
        offset = 0
        while True:
            page = list_tickets.sync(
                client=api, project_id=project.id, limit=2, offset=offset
            )
            assert isinstance(page, models.TicketList)
            seen += [t.id for t in page.data]
            offset += len(page.data)
            if not page.pagination.has_more:
                break
        assert seen == [t.id for t in reversed(created)]
        assert page.pagination.total == len(created)
