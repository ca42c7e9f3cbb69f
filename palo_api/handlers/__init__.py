"""HTTP handlers, one module per tag, one function per ``operationId``."""

from __future__ import annotations

from typing import Any

from connexion.context import context as connexion_context
from starlette.responses import Response

from palo_api import context
from palo_api.runtime import Runtime
from palo_api.services.auth import Principal

Headers = dict[str, str]
Reply = tuple[Any, int] | tuple[Any, int, Headers]


def no_content() -> Response:
    """A 204 with neither body nor Content-Type."""
    return Response(status_code=204)


def runtime() -> Runtime:
    """The process's runtime (settings, database, token service)."""
    return context.current().runtime


def caller() -> Principal:
    """The authenticated caller of the current operation."""
    principal = connexion_context["token_info"]["principal"]
    assert isinstance(principal, Principal)
    return principal
