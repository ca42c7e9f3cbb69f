"""The error hierarchy and the one place that renders errors as responses.

Every error the server answers, whether raised by our code, by Connexion's
validation and security, by Starlette's routing, or by an unexpected bug, leaves
through :func:`error_response` in the specification's body:
``{"error", "message", "request_id"}`` with optional ``details``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.responses import Response

from palo_api.context import current_request_id

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with an HTTP status and a stable snake_case code."""

    status = 500
    code = "internal_error"
    default_message = "The server met an unexpected error."

    def __init__(
        self,
        message: str | None = None,
        *,
        details: Sequence[Mapping[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details = list(details) if details else None
        self.headers = dict(headers or {})
        if code:
            self.code = code
        super().__init__(self.message)


class BadRequest(ApiError):
    status = 400
    code = "invalid_parameter"
    default_message = "A parameter of the request is invalid."


class InvalidJson(BadRequest):
    code = "invalid_json"
    default_message = "The request body is not valid JSON."


class Unauthenticated(ApiError):
    status = 401
    code = "invalid_token"
    default_message = "A valid bearer token is required."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.headers.setdefault(
            "WWW-Authenticate", f'Bearer realm="palo", error="{self.code}"'
        )


class MissingCredentials(Unauthenticated):
    """No credentials at all: RFC 6750 puts no error code in the challenge."""

    code = "unauthenticated"
    default_message = "This operation needs a bearer token."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": 'Bearer realm="palo"'})
        super().__init__(message, **kwargs)


class InvalidClient(ApiError):
    status = 401
    code = "invalid_client"
    default_message = "The client credentials are invalid."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.headers.setdefault("WWW-Authenticate", 'Basic realm="palo"')


class Forbidden(ApiError):
    status = 403
    code = "forbidden"
    default_message = "You may not perform this action."


class NotFound(ApiError):
    status = 404
    code = "not_found"
    default_message = "The resource does not exist."


class MethodNotAllowed(ApiError):
    status = 405
    code = "method_not_allowed"
    default_message = "This method is not allowed on this resource."


class Conflict(ApiError):
    status = 409
    code = "conflict"
    default_message = "The request conflicts with the resource's current state."


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"
    default_message = "The request body is too large."


class UnsupportedMediaType(ApiError):
    status = 415
    code = "unsupported_media_type"
    default_message = "The request's content type is not supported here."


class ValidationFailed(ApiError):
    status = 422
    code = "validation_failed"
    default_message = "The request body is invalid."


class TooManyRequests(ApiError):
    status = 429
    code = "rate_limit_exceeded"
    default_message = "Too many requests."


class NotImplementedYet(ApiError):
    status = 501
    code = "not_implemented"
    default_message = "This operation is not available on this server yet."


class ServiceUnavailable(ApiError):
    status = 503
    code = "service_unavailable"
    default_message = "The service is temporarily unavailable; retry shortly."


def error_body(
    code: str, message: str, details: Sequence[Mapping[str, str]] | None = None
) -> dict[str, Any]:
    """The specification's error body for the current request."""
    request_id = current_request_id()
    body: dict[str, Any] = {
        "error": code,
        "message": message,
        "request_id": str(request_id) if request_id else None,
    }
    if details:
        body["details"] = [dict(detail) for detail in details]
    return body


def error_response(error: ApiError) -> Response:
    """Render ``error`` as a JSON response in the specification's format."""
    body = error_body(error.code, error.message, error.details)
    # A lone surrogate quoted from the request cannot be encoded as UTF-8;
    # written as its JSON escape instead, the error still renders.
    text = json.dumps(body, ensure_ascii=False)
    return Response(
        text.encode("utf-8", "backslashreplace"),
        status_code=error.status,
        headers=error.headers,
        media_type="application/json",
    )
