"""Connexion's security hooks, named by the OpenAPI document's schemes."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool

from palo_api import context, metrics
from palo_api.errors import ApiError
from palo_api.services import auth


async def bearer_info(token: str) -> dict[str, Any]:
    """Resolve a bearer token to its caller (``bearerAuth`` scheme).

    Connexion tries each scheme an operation accepts until one succeeds, and
    ``oauth2`` carries the same token: the outcome of the first check is
    kept for the request and given again, so that a token is looked up, and
    a refusal counted, once (and an unreachable database waited for once).
    """
    state = context.current()
    if state.bearer is not None and state.bearer[0] == token:
        outcome = state.bearer[1]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome
    runtime = state.runtime

    def authenticate() -> auth.Principal:
        with runtime.database.lookup() as session:
            return auth.authenticate_bearer(
                session=session, tokens=runtime.tokens, token=token
            )

    # The lookup is blocking database work: keep it off the event loop.
    try:
        principal = await run_in_threadpool(authenticate)
    except Exception as exc:
        if isinstance(exc, ApiError):
            metrics.TOKEN_FAILURES.labels(exc.code).inc()
        state.bearer = (token, exc)
        raise
    state.org_id, state.client_id = principal.org_id, principal.client_id
    info = {"sub": str(principal.user_id), "principal": principal}
    state.bearer = (token, info)
    return info


async def token_info(token: str) -> dict[str, Any]:
    """The ``oauth2`` scheme carries the same bearer tokens."""
    return await bearer_info(token)


def basic_info(username: str, password: str) -> dict[str, Any]:
    """Pass HTTP Basic client credentials to the token endpoint unverified.

    The token operation verifies them itself, so that a wrong secret is
    counted and throttled in one place whichever way it arrived.
    """
    return {"sub": username, "client_id": username, "client_secret": password}
