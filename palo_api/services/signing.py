"""Webhook secrets and the signature headers of each delivery.

Two signatures cover the same raw body bytes:

- ``X-Palo-Signature: t=<unix>,v1=<hex>``, the HMAC-SHA256 of
  ``<t>.<body>`` keyed with the secret's UTF-8 bytes, ``whsec_`` included;
- the Standard Webhooks headers ``webhook-id``, ``webhook-timestamp`` and
  ``webhook-signature: v1,<base64>``, the HMAC-SHA256 of
  ``<id>.<t>.<body>`` keyed with the base64-decoded part after ``whsec_``,
  as that specification prescribes, so its libraries verify deliveries.

During a rotation each header carries one signature per secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of every secret, not one
SECRET_BYTES = 24


def new_secret() -> str:
    """A fresh signing secret in the Standard Webhooks form."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def palo_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex ``v1`` value of ``X-Palo-Signature`` for one secret."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def standard_signature(
    secret: str, message_id: str, timestamp: int, body: bytes
) -> str:
    """One ``v1,<base64>`` value of the Standard Webhooks ``webhook-signature``."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    message = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(
    *,
    secrets_in_use: Sequence[str],
    event_id: str,
    event_type: str,
    delivery_id: str,
    timestamp: int,
    body: bytes,
) -> dict[str, str]:
    """Every header that authenticates one delivery attempt."""
    palo = ",".join(
        [f"t={timestamp}"]
        + [f"v1={palo_signature(s, timestamp, body)}" for s in secrets_in_use]
    )
    standard = " ".join(
        standard_signature(s, event_id, timestamp, body) for s in secrets_in_use
    )
    return {
        "X-Palo-Signature": palo,
        "X-Palo-Event": event_type,
        "X-Palo-Delivery": delivery_id,
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard,
    }
