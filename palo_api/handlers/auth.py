"""Token operations: client credentials in, bearer token out."""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

from connexion.context import context as connexion_context
from connexion.context import request as connexion_request
from starlette.concurrency import run_in_threadpool

from palo_api import metrics
from palo_api.context import current
from palo_api.errors import BadRequest, InvalidClient
from palo_api.handlers import Reply, caller, runtime
from palo_api.schemas import token_out
from palo_api.services import auth
from palo_api.services.throttle import (
    AllPlacesPending,
    LoginThrottler,
    Reservation,
    TooManyAttempts,
)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# An attempt that finds every place left in its window being checked waits
# this long, looking again this often, for one to settle.
PENDING_WAIT_SECONDS = 10.0
PENDING_POLL_SECONDS = 0.05


async def create_token(body: dict[str, Any]) -> Reply:
    # Asynchronous so that a burst of token requests waits for the hasher
    # without holding threads, which every other request needs too.
    client_id, client_secret = _credentials(body)
    current().client_id = client_id[:100]
    rt = runtime()
    # Throttled attempts are refused here, before any secret is hashed.
    try:
        reservation = await _reserve(rt.throttle, client_id, _source_address())
    except TooManyAttempts:
        metrics.TOKEN_FAILURES.labels("too_many_attempts").inc()
        raise
    failed = False
    try:

        def find() -> auth.StoredClient | None:
            with rt.database.lookup() as session:
                return auth.find_client(session=session, client_id=client_id)

        client = await run_in_threadpool(find)
        valid = await rt.hasher.verify_async(
            client.secret_hash if client else None, client_secret
        )
        try:
            issued = auth.issue_token(
                tokens=rt.tokens, client_id=client_id, client=client, secret_valid=valid
            )
        except InvalidClient as exc:
            failed = True
            metrics.TOKEN_FAILURES.labels(exc.code).inc()
            raise
    finally:
        await run_in_threadpool(
            functools.partial(rt.throttle.settle, reservation, failed=failed)
        )
    if client is not None:
        current().org_id = client.org_id
    metrics.TOKENS_ISSUED.labels("client_credentials").inc()
    return token_out.dump(issued), 200, NO_STORE


async def _reserve(
    throttle: LoginThrottler, client_id: str, address: str | None
) -> Reservation:
    """A place in the failure windows, waiting while others' are being checked."""
    deadline = time.monotonic() + PENDING_WAIT_SECONDS
    while True:
        try:
            return await run_in_threadpool(
                functools.partial(
                    throttle.reserve, client_id=client_id, address=address
                )
            )
        except AllPlacesPending:
            if time.monotonic() >= deadline:
                raise TooManyAttempts(
                    "Too many attempts for this client or from this address are "
                    "being checked at once; try again in a second.",
                    headers={"Retry-After": "1"},
                ) from None
            await asyncio.sleep(PENDING_POLL_SECONDS)


def refresh_token() -> Reply:
    issued = auth.refresh_token(tokens=runtime().tokens, principal=caller())
    metrics.TOKENS_ISSUED.labels("refresh").inc()
    return token_out.dump(issued), 200, NO_STORE


def _source_address() -> str | None:
    """The caller's address, as the server saw it or a trusted proxy forwarded it."""
    client = connexion_request.client
    return client.host if client else None


def _credentials(body: dict[str, Any]) -> tuple[str, str]:
    """Credentials from the body (JSON or form) or from HTTP Basic, not both."""
    basic = connexion_context.get("token_info") or {}
    in_body = "client_id" in body or "client_secret" in body
    if basic and in_body:
        # RFC 6749, section 2.3: one authentication method per request.
        raise BadRequest(
            "Send the client credentials either in the body or by HTTP Basic, "
            "not both.",
            code="invalid_request",
        )

    source = basic or body
    if source.get("client_id") and source.get("client_secret"):
        return source["client_id"], source["client_secret"]
    raise InvalidClient(
        "Send client_id and client_secret in the body or by HTTP Basic."
    )
