"""Checks every response a test receives against the OpenAPI document.

The session's test client calls ``ResponseChecker`` on each response, so a
status the operation does not declare, a content type it does not produce, a
header that breaks its schema, a response without the ``X-Request-ID`` that the
document promises on every response, or a body that breaks the response schema
(a field the document does not list included, since its response objects say
``additionalProperties: false``) fails the test that received it.
"""

from __future__ import annotations

from typing import Any

import httpx
from openapi_core import OpenAPI
from openapi_core.exceptions import OpenAPIError
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS30Validator

from palo_api.app import load_spec, public_document

# Served beside the API under /v1, and described by no operation.
OUTSIDE_DOCUMENT = ("/v1/openapi.json", "/v1/openapi.yaml", "/v1/ui")


class UndocumentedResponse(AssertionError):
    """A response the OpenAPI document does not describe."""


class ResponseChecker:
    """Validates ``httpx`` responses against the document; use as a response hook."""

    def __init__(self, spec: dict[str, Any] | None = None) -> None:
        document = public_document(spec or load_spec())
        self._openapi = OpenAPI.from_dict(document)
        error_schema = {
            **document["components"]["schemas"]["Error"],
            "components": document["components"],
        }
        self._error = OAS30Validator(error_schema)
        self.checked = 0

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        request = response.request
        # As sent: a decoded path would turn /v1%2Fprojects, which no route
        # matches, into /v1/projects.
        path = request.url.raw_path.decode("ascii").partition("?")[0]
        if not path.startswith("/v1/") or path.startswith(OUTSIDE_DOCUMENT):
            return

        where = f"{request.method} {path} answered {response.status_code}"
        if "x-request-id" not in response.headers:
            raise UndocumentedResponse(f"{where} without X-Request-ID")
        content_type = response.headers.get("content-type", "")
        # openapi-core skips the body of a status that declares no content.
        if response.status_code in (204, 304) and (response.content or content_type):
            raise UndocumentedResponse(f"{where} with a body or a content type")
        try:
            self._openapi.validate_response(
                MockRequest("http://testserver", request.method, path, content_type=""),
                MockResponse(
                    response.content,
                    status_code=response.status_code,
                    headers=dict(response.headers),
                    content_type=content_type,
                ),
            )
        except (PathNotFound, OperationNotFound):
            self._check_routing_error(response, where)
        except OpenAPIError as exc:
            raise UndocumentedResponse(
                f"{where}: {_explain(exc)}\n{response.text[:2000]}"
            ) from None
        self.checked += 1

    def _check_routing_error(self, response: httpx.Response, where: str) -> None:
        """A path or method the document lacks: 404 or 405 with the error body."""
        if response.status_code not in (404, 405):
            raise UndocumentedResponse(f"{where}, for a route the document lacks")
        if response.headers.get("content-type") != "application/json":
            raise UndocumentedResponse(f"{where} with a body that is not JSON")
        errors = [e.message for e in self._error.iter_errors(response.json())]
        if errors:
            raise UndocumentedResponse(f"{where} with a bad error body: {errors}")


def _explain(exc: BaseException) -> str:
    """The exception and the schema errors chained under it, one per line."""
    lines = [f"{type(exc).__name__}: {exc}"]
    cause = exc.__cause__ or exc.__context__
    while cause is not None:
        lines.append(f"{type(cause).__name__}: {cause}")
        for error in getattr(cause, "schema_errors", ()):
            location = "/".join(str(p) for p in error.absolute_path)
            lines.append(f"  at /{location}: {error.message}")
        cause = cause.__cause__ or cause.__context__
    return "\n".join(lines)
