"""Signature test vectors, computed independently with OpenSSL.

    printf '%s' "$T.$BODY" | openssl dgst -sha256 -hmac "$SECRET"
    printf '%s' "$ID.$T.$BODY" | openssl dgst -sha256 -mac HMAC \\
        -macopt hexkey:$(printf '%s' "${SECRET#whsec_}" | base64 -d | xxd -p) \\
        -binary | base64
"""

from __future__ import annotations

from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook as StandardWebhook

from palo_api.services import signing

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
EVENT_ID = "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"
TIMESTAMP = 1768469400
BODY = (
    '{"id":"c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f","type":"ticket.created",'
    '"created_at":"2026-01-15T09:30:00Z","data":{"title":"Café ☕ — naïve 東京 😀"}}'
).encode()
PALO_V1 = "2b6b9916117ff07a3457103115206ac060702514616fc050674b5eb70213b436"
STANDARD_V1 = "v1,bl+N6MCNJSISqaBLBP55EaPsRsgQbOaYf24T2qD0xoA="


def test_palo_signature_of_a_non_ascii_body_matches_the_vector() -> None:
    assert signing.palo_signature(SECRET, TIMESTAMP, BODY) == PALO_V1


def test_standard_signature_matches_the_vector_and_the_library() -> None:
    ours = signing.standard_signature(SECRET, EVENT_ID, TIMESTAMP, BODY)
    theirs = StandardWebhook(SECRET).sign(
        EVENT_ID, datetime.fromtimestamp(TIMESTAMP, UTC), BODY.decode()
    )

    assert ours == STANDARD_V1 == theirs


def test_headers_put_every_secret_in_use_in_both_schemes() -> None:
    other = "whsec_Zp4Xk7Ns2Qw9Lm5Rt8Vy3Bc6Hj1Df0Ga"

    headers = signing.signature_headers(
        secrets_in_use=[SECRET, other],
        event_id=EVENT_ID,
        event_type="ticket.created",
        delivery_id="d-1",
        timestamp=TIMESTAMP,
        body=BODY,
    )

    assert headers["X-Palo-Signature"] == (
        f"t={TIMESTAMP},v1={PALO_V1},"
        f"v1={signing.palo_signature(other, TIMESTAMP, BODY)}"
    )
    assert headers["webhook-signature"].split(" ") == [
        STANDARD_V1,
        signing.standard_signature(other, EVENT_ID, TIMESTAMP, BODY),
    ]
    assert headers["webhook-id"] == EVENT_ID
    assert headers["webhook-timestamp"] == str(TIMESTAMP)
    assert headers["X-Palo-Event"] == "ticket.created"
    assert headers["X-Palo-Delivery"] == "d-1"


def test_new_secrets_are_standard_webhooks_secrets_and_never_repeat() -> None:
    secrets = {signing.new_secret() for _ in range(100)}

    assert len(secrets) == 100
    for secret in secrets:
        assert secret.startswith("whsec_")
        StandardWebhook(secret)  # parses: base64 after the prefix
