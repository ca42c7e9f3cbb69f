"""Per-request state shared by middleware, security checks, handlers and logs."""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from palo_api.runtime import Runtime


@dataclass
class RequestState:
    """What one request carries through the layers."""

    runtime: Runtime
    request_id: uuid.UUID = field(default_factory=uuid.uuid4)
    # Headers an inner layer asks to put on the response, error or not (the
    # quota's): the outermost middleware stamps them, as it does X-Request-ID.
    response_headers: dict[str, str] = field(default_factory=dict)
    # For the request's log line and metrics: the documented path it matched,
    # who made it, and the error behind a 5xx answer (logged with it).
    route: str | None = None
    org_id: uuid.UUID | None = None
    client_id: str | None = None
    error: BaseException | None = None
    # The bearer token checked for this request and what the check gave: the
    # caller's token info, or the error it raised.
    bearer: tuple[str, dict[str, Any] | Exception] | None = None


_current: ContextVar[RequestState] = ContextVar("palo_request")


def bind(state: RequestState) -> None:
    """Make ``state`` the current request's state (for this task and its threads)."""
    _current.set(state)


def current() -> RequestState:
    """The state of the request being served."""
    return _current.get()


def current_or_none() -> RequestState | None:
    """The state of the request being served, or None outside a request."""
    return _current.get(None)


def current_request_id() -> uuid.UUID | None:
    """The current request's id, or None outside a request."""
    state = _current.get(None)
    return state.request_id if state else None
