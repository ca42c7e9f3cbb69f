"""The outermost ASGI layer: request ids, body-size limit, last-resort errors."""

from __future__ import annotations

import logging
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from palo_api.context import RequestState, bind
from palo_api.errors import ApiError, BadRequest, PayloadTooLarge, error_response
from palo_api.runtime import Runtime

logger = logging.getLogger(__name__)


def incoming_request_id(value: str | None) -> uuid.UUID | None:
    """A client's X-Request-ID, kept only when it is a canonical UUID."""
    if not value or len(value) != 36:
        return None
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    return parsed if str(parsed) == value.lower() else None


class RequestContextMiddleware:
    """Binds the request's state, stamps X-Request-ID, and caps body size.

    It sits outside Connexion's exception handling, so whatever it refuses it
    renders itself, in the same error format.
    """

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self.max_body = runtime.settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        headers = Headers(scope=scope)
        request_id = incoming_request_id(headers.get("x-request-id")) or uuid.uuid4()
        bind(RequestState(runtime=self.runtime, request_id=request_id))
        stamp = str(request_id)
        started = False

        async def send_stamped(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)["X-Request-ID"] = stamp
            await send(message)

        refusal = self._check_length(headers.get("content-length"))
        if refusal is not None:
            await error_response(refusal)(scope, receive, send_stamped)
            return

        try:
            await self.app(scope, self._capped(receive), send_stamped)
        except Exception as exc:
            if started:
                raise
            error = exc if isinstance(exc, ApiError) else ApiError()
            if not isinstance(exc, ApiError):
                logger.error("unhandled error", exc_info=exc)
            await error_response(error)(scope, receive, send_stamped)

    def _check_length(self, raw: str | None) -> ApiError | None:
        if raw is None:
            return None
        if not raw.isdigit() or len(raw) > 18:
            return BadRequest("The Content-Length header is invalid.")
        if int(raw) > self.max_body:
            return PayloadTooLarge(
                f"The request body exceeds the limit of {self.max_body} bytes."
            )
        return None

    def _capped(self, receive: Receive) -> Receive:
        seen = 0

        async def receive_capped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise PayloadTooLarge(
                        f"The request body exceeds the limit of {self.max_body} bytes."
                    )
            return message

        return receive_capped
