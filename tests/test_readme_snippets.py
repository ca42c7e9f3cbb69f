"""The README's signature verifiers, run on real deliveries of the worker."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from palo_api.runtime import Runtime
from palo_api.services import signing
from palo_api.worker import Worker
from tests.conftest import Account
from tests.test_webhooks import created
from tests.test_worker import settle_earlier_tests

README = Path(__file__).resolve().parent.parent / "README.md"


def snippet(name: str) -> str:
    """The code block that follows ``<!-- snippet: name -->`` in the README."""
    text = README.read_text(encoding="utf-8")
    match = re.search(
        rf"<!-- snippet: {re.escape(name)} -->\s*```[a-z]*\n(.*?)```", text, re.DOTALL
    )
    assert match, f"README has no snippet {name!r}"
    return match.group(1)


@pytest.fixture
def delivery(
    client: TestClient, runtime: Runtime, admin_account: Account
) -> tuple[str, httpx.Request]:
    """A real delivery, with a payload of non-ASCII text and emoji."""
    settle_earlier_tests(runtime)
    captured: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        captured.append(request)
        return httpx.Response(200)

    hook = created(client, admin_account, events=["project.created"])
    client.post(
        "/v1/projects",
        json={"name": "Équipe 🚀 naïve — 東京"},
        headers=admin_account.headers,
    )
    worker = Worker(runtime, transport=httpx.MockTransport(receive))
    worker.run_once()

    (request,) = captured
    assert "🚀".encode() in request.content
    return hook["secret"], request


def python_verifier() -> Callable[[str, str, bytes], bool]:
    namespace: dict[str, Any] = {}
    exec(snippet("verify-python"), namespace)  # noqa: S102 - our own README
    verify: Callable[[str, str, bytes], bool] = namespace["verify_palo"]
    return verify


def javascript_verifier(tmp_path: Path) -> Callable[[str, str, bytes], bool]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    module = tmp_path / "verify.js"
    module.write_text(snippet("verify-javascript"), encoding="utf-8")
    harness = tmp_path / "harness.js"
    harness.write_text(
        'const { verifyPalo } = require("./verify.js");\n'
        'const input = JSON.parse(require("node:fs").readFileSync(0, "utf8"));\n'
        'const body = Buffer.from(input.body, "base64");\n'
        "process.stdout.write(String(verifyPalo(input.secret, input.header, body)));\n",
        encoding="utf-8",
    )

    def verify(secret: str, header: str, body: bytes) -> bool:
        payload = {
            "secret": secret,
            "header": header,
            "body": base64.b64encode(body).decode(),
        }
        result = subprocess.run(
            [node, str(harness)],
            input=json.dumps(payload),
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        return {"true": True, "false": False}[result.stdout]

    return verify


@pytest.fixture(params=["python", "javascript"])
def verify(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[str, str, bytes], bool]:
    if request.param == "python":
        return python_verifier()
    return javascript_verifier(tmp_path)


def test_the_snippet_accepts_a_real_delivery(
    verify: Callable[[str, str, bytes], bool], delivery: tuple[str, httpx.Request]
) -> None:
    secret, request = delivery

    assert verify(secret, request.headers["x-palo-signature"], request.content)


def test_the_snippet_refuses_a_tampered_body_or_another_secret(
    verify: Callable[[str, str, bytes], bool], delivery: tuple[str, httpx.Request]
) -> None:
    secret, request = delivery
    header = request.headers["x-palo-signature"]
    tampered = request.content.replace("🚀".encode(), "🛸".encode())

    assert not verify(secret, header, tampered)
    assert not verify(signing.new_secret(), header, request.content)
    assert not verify(secret, "v1=" + header.split("v1=")[1], request.content)


def test_the_snippet_refuses_a_stale_timestamp(
    verify: Callable[[str, str, bytes], bool], delivery: tuple[str, httpx.Request]
) -> None:
    secret, request = delivery
    stale = int(time.time()) - 301
    header = f"t={stale},v1={signing.palo_signature(secret, stale, request.content)}"
    fresh = int(time.time()) - 200
    recent = f"t={fresh},v1={signing.palo_signature(secret, fresh, request.content)}"

    assert not verify(secret, header, request.content)
    assert verify(secret, recent, request.content)


def test_the_snippet_accepts_either_signature_during_a_rotation(
    verify: Callable[[str, str, bytes], bool], delivery: tuple[str, httpx.Request]
) -> None:
    old_secret, request = delivery
    new_secret = signing.new_secret()
    headers = signing.signature_headers(
        secrets_in_use=[new_secret, old_secret],
        event_id="e",
        event_type="project.created",
        delivery_id="d",
        timestamp=int(time.time()),
        body=request.content,
    )

    for secret in (old_secret, new_secret):
        assert verify(secret, headers["X-Palo-Signature"], request.content)
