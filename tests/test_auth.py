"""Client credentials in, bearer tokens out, and every way a token is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from palo_api.config import Settings
from palo_api.runtime import Runtime
from palo_api.services import admin
from palo_api.tokens import TokenError, TokenService
from tests.conftest import TEST_SIGNING_KEYS, Account, assert_error

TEST_KID, _, TEST_SECRET = TEST_SIGNING_KEYS.partition(":")
ISSUER = "https://api.palo.io"
DAY = 24 * 3600

Presenter = Callable[[str, str], dict[str, Any]]


def as_json(client_id: str, client_secret: str) -> dict[str, Any]:
    return {"json": {"client_id": client_id, "client_secret": client_secret}}


def as_form(client_id: str, client_secret: str) -> dict[str, Any]:
    """OAuth2 client_secret_post."""
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": client_secret,
    }
    return {"data": form}


def as_basic(client_id: str, client_secret: str) -> dict[str, Any]:
    """OAuth2 client_secret_basic: only grant_type in the form."""
    return {
        "data": {"grant_type": "client_credentials"},
        "auth": (client_id, client_secret),
    }


PRESENTERS = pytest.mark.parametrize(
    "present", [as_json, as_form, as_basic], ids=["json", "form", "basic"]
)


def request_token(
    client: TestClient, present: Presenter, client_id: str, client_secret: str
) -> httpx.Response:
    return client.post("/v1/auth/token", **present(client_id, client_secret))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def decode_segment(text: str) -> dict[str, Any]:
    """A JWT header or payload, read without any verification."""
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(text + "==="))
    return decoded


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    return decode_segment(header), decode_segment(payload)


def sign(
    header: dict[str, Any],
    claims: Any,
    *,
    secret: str = TEST_SECRET,
    digest: Any = hashlib.sha256,
) -> str:
    """A JWT signed by hand, so that tests can forge any header or claim."""
    signing_input = f"{segment(header)}.{segment(claims)}"
    mac = hmac.new(secret.encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(mac)}"


def resign(token: str, **changes: Any) -> str:
    """``token`` with claims changed (None removes one), signed with the test key."""
    header, claims = parts(token)
    claims = {**claims, **changes}
    return sign(header, {k: v for k, v in claims.items() if v is not None})


def issue(runtime: Runtime, account: Account, **kwargs: Any) -> str:
    return runtime.tokens.issue(
        user_id=account.user_id,
        org_id=account.org_id,
        client_id=account.client_id,
        **kwargs,
    ).access_token


def disable(runtime: Runtime, account: Account) -> None:
    with runtime.database.write() as session:
        admin.disable_client(session=session, client_id=account.client_id)


def assert_token_response(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert body["token_type"] == "Bearer"
    assert isinstance(body["access_token"], str)
    token: str = body["access_token"]
    return token


# Obtaining a token.


@PRESENTERS
def test_valid_credentials_obtain_a_working_bearer_token(
    client: TestClient, member_account: Account, present: Presenter
) -> None:
    response = request_token(
        client, present, member_account.client_id, member_account.client_secret
    )

    token = assert_token_response(response)
    assert response.json()["expires_in"] == 3600
    listed = client.get("/v1/projects", headers=bearer(token))
    assert listed.status_code == 200, listed.text


def test_json_body_may_name_the_client_credentials_grant(
    client: TestClient, member_account: Account
) -> None:
    body = {
        "grant_type": "client_credentials",
        "client_id": member_account.client_id,
        "client_secret": member_account.client_secret,
    }

    response = client.post("/v1/auth/token", json=body)

    assert_token_response(response)


def test_basic_credentials_with_a_form_scope_are_accepted(
    client: TestClient, member_account: Account
) -> None:
    response = client.post(
        "/v1/auth/token",
        data={"grant_type": "client_credentials", "scope": "anything"},
        auth=(member_account.client_id, member_account.client_secret),
    )

    assert_token_response(response)


def test_token_carries_the_documented_header_and_claims(
    client: TestClient, member_account: Account
) -> None:
    response = request_token(
        client, as_json, member_account.client_id, member_account.client_secret
    )

    header, claims = parts(assert_token_response(response))
    assert header["alg"] == "HS256"
    assert header["kid"] == TEST_KID
    assert claims["iss"] == ISSUER
    assert claims["sub"] == str(member_account.user_id)
    assert claims["org"] == str(member_account.org_id)
    assert claims["client_id"] == member_account.client_id
    assert isinstance(claims["iat"], int)
    assert claims["exp"] == claims["iat"] + 3600
    assert claims["auth_time"] == claims["iat"]
    assert str(uuid.UUID(claims["jti"])) == claims["jti"]
    assert member_account.client_secret not in response.text


def test_each_token_has_its_own_jti(
    client: TestClient, member_account: Account
) -> None:
    tokens = [
        assert_token_response(
            request_token(
                client, as_form, member_account.client_id, member_account.client_secret
            )
        )
        for _ in range(3)
    ]

    assert len({parts(token)[1]["jti"] for token in tokens}) == 3


# Refused credentials.


BAD_CREDENTIALS: dict[str, Callable[[Account, Account], tuple[str, str]]] = {
    "wrong secret": lambda a, _: (a.client_id, a.client_secret + "x"),
    "secret in other case": lambda a, _: (a.client_id, a.client_secret.swapcase()),
    "secret cut short": lambda a, _: (a.client_id, a.client_secret[:-1]),
    "another client's secret": lambda a, b: (a.client_id, b.client_secret),
    "unknown client": lambda a, _: ("cli_unknown", a.client_secret),
    "client id with a space": lambda a, _: (a.client_id + " ", a.client_secret),
}


@PRESENTERS
@pytest.mark.parametrize(
    "credentials", list(BAD_CREDENTIALS.values()), ids=list(BAD_CREDENTIALS)
)
def test_wrong_credentials_answer_401_invalid_client(
    client: TestClient,
    member_account: Account,
    admin_account: Account,
    present: Presenter,
    credentials: Callable[[Account, Account], tuple[str, str]],
) -> None:
    client_id, client_secret = credentials(member_account, admin_account)

    response = request_token(client, present, client_id, client_secret)

    assert_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic ")
    assert client_secret not in response.text


@PRESENTERS
def test_disabled_client_cannot_obtain_a_token(
    client: TestClient, runtime: Runtime, member_account: Account, present: Presenter
) -> None:
    disable(runtime, member_account)

    response = request_token(
        client, present, member_account.client_id, member_account.client_secret
    )

    assert_error(response, 401, "invalid_client")
    assert "www-authenticate" in response.headers


@pytest.mark.parametrize(
    ("client_id", "client_secret"), [("", ""), ("", "secret"), ("cli_x", "")]
)
def test_empty_basic_credentials_answer_401_invalid_client(
    client: TestClient, client_id: str, client_secret: str
) -> None:
    response = request_token(client, as_basic, client_id, client_secret)

    assert_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic ")


def test_form_without_any_credentials_answers_401_invalid_client(
    client: TestClient,
) -> None:
    response = client.post("/v1/auth/token", data={"grant_type": "client_credentials"})

    assert_error(response, 401, "invalid_client")


@pytest.mark.parametrize(
    "body",
    [
        {"client_id": "", "client_secret": ""},
        {"client_id": "cli_x", "client_secret": ""},
        {"client_id": "cli_x"},
        {"client_secret": "x"},
        {"client_id": "cli_x", "client_secret": "x", "grant_type": "password"},
        {"client_id": "cli_x", "client_secret": "x", "scope": "all"},
        {"client_id": 5, "client_secret": "x"},
    ],
)
def test_json_token_request_outside_its_schema_answers_422(
    client: TestClient, body: dict[str, Any]
) -> None:
    # The document gives client_id and client_secret a minimum length of 1.
    response = client.post("/v1/auth/token", json=body)

    assert_error(response, 422, "validation_failed")


@pytest.mark.parametrize(
    ("form", "field", "code"),
    [
        pytest.param(
            {"grant_type": "password"},
            "grant_type",
            "unsupported_grant_type",
            id="password grant",
        ),
        pytest.param(
            {"grant_type": "code"},
            "grant_type",
            "unsupported_grant_type",
            id="code grant",
        ),
        pytest.param(
            {"scope": "read"}, "grant_type", "invalid_request", id="no grant_type"
        ),
        pytest.param(
            {"grant_type": "client_credentials", "username": "u"},
            "username",
            "invalid_request",
            id="unknown field",
        ),
        pytest.param(
            {"grant_type": "client_credentials", "client_id": ""},
            "client_id",
            "invalid_request",
            id="empty client_id",
        ),
    ],
)
def test_form_token_request_outside_its_schema_answers_400_with_oauth2_code(
    client: TestClient,
    member_account: Account,
    form: dict[str, str],
    field: str,
    code: str,
) -> None:
    credentials = (member_account.client_id, member_account.client_secret)

    response = client.post("/v1/auth/token", data=form, auth=credentials)

    # RFC 6749, section 5.2: the token endpoint's own error codes.
    body = assert_error(response, 400, code)
    assert [detail["field"] for detail in body["details"]] == [field]


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    ("raw", "repeated"),
    [
        ("grant_type=client_credentials&grant_type=client_credentials", "grant_type"),
        ("grant_type=client_credentials&client_id={id}&client_id=other", "client_id"),
        (
            "grant_type=client_credentials&client_id={id}"
            "&client_secret={secret}&client_secret={secret}",
            "client_secret",
        ),
    ],
    ids=["grant_type", "client_id", "client_secret"],
)
def test_form_repeating_a_field_answers_400_invalid_request(
    client: TestClient, member_account: Account, raw: str, repeated: str
) -> None:
    content = raw.format(
        id=member_account.client_id, secret=member_account.client_secret
    )

    response = client.post("/v1/auth/token", content=content, headers=FORM)

    # RFC 6749, section 3.2: request parameters must not be included more than once.
    body = assert_error(response, 400, "invalid_request")
    assert body["details"] == [{"field": repeated, "message": "must appear once"}]


@pytest.mark.parametrize("content", [b"", None])
def test_empty_form_answers_400_invalid_request(
    client: TestClient, content: bytes | None
) -> None:
    response = client.post("/v1/auth/token", content=content, headers=FORM)

    assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    "form",
    [
        {"grant_type": "client_credentials", "client_id": "someone-else"},
        {"grant_type": "client_credentials", "client_secret": "another-secret"},
    ],
)
def test_credentials_both_in_form_and_by_basic_answer_400_invalid_request(
    client: TestClient, member_account: Account, form: dict[str, str]
) -> None:
    credentials = (member_account.client_id, member_account.client_secret)

    response = client.post("/v1/auth/token", data=form, auth=credentials)

    assert_error(response, 400, "invalid_request")


# Refreshing.


def test_refresh_returns_a_new_token_for_the_same_session(
    client: TestClient, member_account: Account
) -> None:
    response = client.post("/v1/auth/refresh", headers=member_account.headers)

    token = assert_token_response(response)
    old_header, old = parts(member_account.token)
    new_header, new = parts(token)
    assert new_header["kid"] == old_header["kid"]
    assert new["sub"] == old["sub"]
    assert new["org"] == old["org"]
    assert new["client_id"] == old["client_id"]
    assert new["auth_time"] == old["auth_time"]
    assert new["jti"] != old["jti"]
    assert client.get("/v1/projects", headers=bearer(token)).status_code == 200


def test_a_chain_of_refreshes_keeps_the_original_auth_time(
    client: TestClient, runtime: Runtime, member_account: Account
) -> None:
    auth_time = int(time.time()) - 3 * 3600
    token = issue(runtime, member_account, auth_time=auth_time)

    for _ in range(3):
        token = assert_token_response(
            client.post("/v1/auth/refresh", headers=bearer(token))
        )

    assert parts(token)[1]["auth_time"] == auth_time


def test_refresh_never_reaches_past_auth_time_plus_a_day(
    client: TestClient, runtime: Runtime, member_account: Account
) -> None:
    auth_time = int(time.time()) - DAY + 600
    token = issue(runtime, member_account, auth_time=auth_time)

    response = client.post("/v1/auth/refresh", headers=bearer(token))

    refreshed = assert_token_response(response)
    assert 0 < response.json()["expires_in"] <= 600
    assert parts(refreshed)[1]["exp"] == auth_time + DAY


def test_refresh_of_a_session_older_than_a_day_answers_401(
    client: TestClient, runtime: Runtime, member_account: Account
) -> None:
    now = int(time.time())
    token = issue(runtime, member_account, auth_time=now - DAY - 1, now=now - 10)

    refused = client.post("/v1/auth/refresh", headers=bearer(token))
    # Within the clock leeway the token itself still works: only refreshing stops.
    listed = client.get("/v1/projects", headers=bearer(token))

    assert_error(refused, 401, "invalid_token")
    assert refused.headers["www-authenticate"].startswith("Bearer ")
    assert listed.status_code == 200, listed.text


def test_refresh_without_a_token_answers_401(client: TestClient) -> None:
    response = client.post("/v1/auth/refresh")

    assert_error(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == 'Bearer realm="palo"'


def test_refresh_does_not_take_client_credentials(
    client: TestClient, member_account: Account
) -> None:
    response = client.post(
        "/v1/auth/refresh",
        auth=(member_account.client_id, member_account.client_secret),
    )

    # Client credentials are not a bearer token: the request is unauthenticated.
    body = assert_error(response, 401, "unauthenticated")
    assert "bearer token" in body["message"]


# Revocation by disabling the client.


def test_disabled_clients_tokens_stop_working_at_once(
    client: TestClient,
    runtime: Runtime,
    member_account: Account,
    admin_account: Account,
) -> None:
    assert client.get("/v1/projects", headers=member_account.headers).status_code == 200

    disable(runtime, member_account)

    listed = client.get("/v1/projects", headers=member_account.headers)
    refreshed = client.post("/v1/auth/refresh", headers=member_account.headers)
    assert_error(listed, 401, "invalid_token")
    assert_error(refreshed, 401, "invalid_token")
    assert listed.headers["www-authenticate"].startswith("Bearer ")
    assert client.get("/v1/projects", headers=admin_account.headers).status_code == 200


# Forged and broken tokens.


def now_claims(token: str) -> dict[str, Any]:
    return parts(token)[1]


def _alg_none(token: str) -> str:
    payload = token.split(".")[1]
    return f"{segment({'alg': 'none', 'kid': TEST_KID, 'typ': 'JWT'})}.{payload}."


def _alg_none_keeping_signature(token: str) -> str:
    _, payload, signature = token.split(".")
    return f"{segment({'alg': 'none', 'kid': TEST_KID})}.{payload}.{signature}"


def _header_swapped(token: str, **header: Any) -> str:
    _, claims = parts(token)
    return sign({"typ": "JWT", **header}, claims)


def _tampered_payload(token: str, **changes: Any) -> str:
    header, _, signature = token.split(".")
    return f"{header}.{segment({**now_claims(token), **changes})}.{signature}"


def _with_raw_number(token: str, claim: str, number: str) -> str:
    """Re-signed with ``claim`` written as ``number``, which JSON cannot hold.

    Python reads 1e400 as infinity and NaN as NaN, so a token could carry them.
    """
    header, claims = parts(token)
    text = json.dumps({**claims, claim: 0}, separators=(",", ":"))
    text = text.replace(f'"{claim}":0', f'"{claim}":{number}')
    signing_input = f"{segment(header)}.{b64url(text.encode())}"
    mac = hmac.new(TEST_SECRET.encode(), signing_input.encode(), hashlib.sha256)
    return f"{signing_input}.{b64url(mac.digest())}"


def _padded(token: str) -> str:
    return ".".join(part + "=" * (-len(part) % 4 or 4) for part in token.split("."))


ATTACKS: dict[str, Callable[[str], str]] = {
    "alg none, unsigned": _alg_none,
    "alg none, no trailing dot": lambda t: _alg_none(t)[:-1],
    "alg none, original signature kept": _alg_none_keeping_signature,
    "alg None capitalised": lambda t: _header_swapped(t, alg="None", kid=TEST_KID),
    "signed with another secret": lambda t: sign(
        parts(t)[0], now_claims(t), secret="z" * 40
    ),
    "signed with an empty secret": lambda t: sign(
        parts(t)[0], now_claims(t), secret=""
    ),
    "payload tampered: sub": lambda t: _tampered_payload(t, sub=str(uuid.uuid4())),
    "payload tampered: org": lambda t: _tampered_payload(t, org=str(uuid.uuid4())),
    "payload tampered: exp": lambda t: _tampered_payload(
        t, exp=now_claims(t)["exp"] + DAY
    ),
    "signature truncated": lambda t: t[:-6],
    "signature removed": lambda t: t.rsplit(".", 1)[0] + ".",
    "last segment dropped": lambda t: t.rsplit(".", 1)[0],
    "unknown kid": lambda t: _header_swapped(t, alg="HS256", kid="test-2"),
    "no kid": lambda t: _header_swapped(t, alg="HS256"),
    "kid of the wrong type": lambda t: _header_swapped(t, alg="HS256", kid=[TEST_KID]),
    "right kid, HS512": lambda t: sign(
        {"alg": "HS512", "kid": TEST_KID}, now_claims(t), digest=hashlib.sha512
    ),
    "right kid, HS384": lambda t: sign(
        {"alg": "HS384", "kid": TEST_KID}, now_claims(t), digest=hashlib.sha384
    ),
    "right kid, RS256 header over an HMAC": lambda t: _header_swapped(
        t, alg="RS256", kid=TEST_KID
    ),
    "wrong iss": lambda t: resign(t, iss="https://evil.example"),
    "no iss": lambda t: resign(t, iss=None),
    "no sub": lambda t: resign(t, sub=None),
    "sub not a uuid": lambda t: resign(t, sub="admin"),
    "no exp": lambda t: resign(t, exp=None),
    "exp as a string": lambda t: resign(t, exp=str(now_claims(t)["exp"])),
    "expired": lambda t: resign(
        t,
        iat=now_claims(t)["iat"] - 7200,
        nbf=now_claims(t)["iat"] - 7200,
        exp=now_claims(t)["iat"] - 3600,
    ),
    "nbf beyond the leeway": lambda t: resign(t, nbf=now_claims(t)["iat"] + 600),
    "iat in the future": lambda t: resign(t, iat=now_claims(t)["iat"] + 3600),
    "no jti": lambda t: resign(t, jti=None),
    "no client_id": lambda t: resign(t, client_id=None),
    "org of another organization, re-signed": lambda t: resign(
        t, org=str(uuid.uuid4())
    ),
    "client_id of another client, re-signed": lambda t: resign(
        t, client_id="cli_someone_else"
    ),
    "auth_time not a number": lambda t: resign(t, auth_time="yesterday"),
    "auth_time infinite": lambda t: _with_raw_number(t, "auth_time", "1e400"),
    "auth_time a boolean": lambda t: resign(t, auth_time=True),
    "auth_time negative": lambda t: resign(t, auth_time=-1),
    "exp infinite": lambda t: _with_raw_number(t, "exp", "1e400"),
    "exp not a number": lambda t: _with_raw_number(t, "exp", "NaN"),
    "client_id with a lone surrogate": lambda t: resign(t, client_id="cli_\ud800"),
    "client_id with NUL": lambda t: resign(t, client_id="cli_\x00x"),
    "client_id a number": lambda t: resign(t, client_id=12),
    "sub a number": lambda t: resign(t, sub=12),
    "payload is a list": lambda t: sign(parts(t)[0], [now_claims(t)]),
    "padded with =": _padded,
    "five segments": lambda t: t + ".e30.e30",
    "only dots": lambda _: "..",
    "not base64": lambda t: "!!!." + t.split(".", 1)[1],
}


@pytest.mark.parametrize("attack", list(ATTACKS.values()), ids=list(ATTACKS))
@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/v1/projects"), ("POST", "/v1/auth/refresh")]
)
def test_forged_or_broken_token_answers_401_invalid_token(
    client: TestClient,
    member_account: Account,
    attack: Callable[[str], str],
    method: str,
    path: str,
) -> None:
    forged = attack(member_account.token)

    response = client.request(method, path, headers=bearer(forged))

    assert forged != member_account.token
    assert_error(response, 401, "invalid_token")
    assert response.headers["www-authenticate"].startswith("Bearer ")


def test_token_re_signed_unchanged_by_hand_is_accepted(
    client: TestClient, member_account: Account
) -> None:
    # Proves the forging helpers above sign exactly as the server does, so each
    # refusal is due to the attack and not to a broken helper.
    header, claims = parts(member_account.token)

    response = client.get("/v1/projects", headers=bearer(sign(header, claims)))

    assert response.status_code == 200, response.text


# Key rotation and clock leeway, on the token service itself.


def rotated(settings: Settings, keys: str) -> TokenService:
    return TokenService(
        Settings.from_env(
            {"PALO_DATABASE_URL": settings.database_url, "PALO_SIGNING_KEYS": keys}
        )
    )


def test_rotation_keeps_old_tokens_valid_and_signs_with_the_new_key(
    settings: Settings, runtime: Runtime, member_account: Account
) -> None:
    service = rotated(settings, f"new:{'n' * 40},{TEST_SIGNING_KEYS}")
    old_token = member_account.token

    new_token = service.issue(
        user_id=member_account.user_id,
        org_id=member_account.org_id,
        client_id=member_account.client_id,
    ).access_token

    assert service.verify(old_token).subject == member_account.user_id
    assert parts(new_token)[0]["kid"] == "new"
    assert service.verify(new_token).subject == member_account.user_id
    with pytest.raises(TokenError):
        runtime.tokens.verify(new_token)


def test_rotation_binds_each_key_to_its_kid(
    settings: Settings, member_account: Account
) -> None:
    service = rotated(settings, f"new:{'n' * 40},{TEST_SIGNING_KEYS}")
    header, claims = parts(member_account.token)

    signed_by_new_key_as_old_kid = sign(header, claims, secret="n" * 40)

    with pytest.raises(TokenError):
        service.verify(signed_by_new_key_as_old_kid)


def test_dropping_the_old_key_retires_its_tokens(
    settings: Settings, member_account: Account
) -> None:
    service = rotated(settings, f"new:{'n' * 40}")

    with pytest.raises(TokenError):
        service.verify(member_account.token)


def test_expiry_allows_the_configured_leeway_and_no_more(
    settings: Settings, runtime: Runtime, member_account: Account
) -> None:
    expires_at = parts(member_account.token)[1]["exp"]
    leeway = settings.token_leeway_seconds

    claims = runtime.tokens.verify(member_account.token, now=expires_at + leeway - 1)

    assert claims.expires_at == expires_at
    with pytest.raises(TokenError, match="expired"):
        runtime.tokens.verify(member_account.token, now=expires_at + leeway + 1)


def test_form_with_too_many_fields_answers_400_invalid_request(
    client: TestClient,
) -> None:
    form = "grant_type=client_credentials&" + "&".join(f"f{i}=1" for i in range(1001))

    response = client.post(
        "/v1/auth/token",
        content=form.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize("client_id", ["palo_ci_x\x00y", "\x00"])
def test_nul_in_basic_client_id_answers_401_invalid_client(
    client: TestClient, client_id: str
) -> None:
    response = client.post(
        "/v1/auth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, "secret"),
    )

    assert_error(response, 401, "invalid_client")
