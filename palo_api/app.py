"""The application factory: one Connexion app per configuration."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import connexion
import yaml
from connexion.exceptions import ProblemException
from connexion.jsonifier import Jsonifier
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from connexion.resolver import Resolver
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from palo_api import errors, metrics
from palo_api.config import Settings
from palo_api.context import current_or_none
from palo_api.db.engine import Database, WriterQueueTimeout
from palo_api.errors import ApiError
from palo_api.middleware import (
    QuotaMiddleware,
    RequestContextMiddleware,
    RouteMiddleware,
)
from palo_api.runtime import Runtime
from palo_api.services import monitoring
from palo_api.validation import VALIDATOR_MAP

logger = logging.getLogger(__name__)

SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi" / "palo-v1.yaml"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
NO_CACHE = {"Cache-Control": "no-store"}
# How long /readyz and /metrics wait for the database.
PROBE_SECONDS = 3.0
T = TypeVar("T")
TOKEN_PATH = "/v1/auth/token"  # noqa: S105 - a path, not a secret


class TagResolver(Resolver):
    """Routes an operation to ``palo_api.handlers.<first tag>.<operationId>``."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        self._modules = {
            operation["operationId"]: operation["tags"][0]
            for item in spec["paths"].values()
            for method, operation in item.items()
            if method in HTTP_METHODS
        }

    def resolve_operation_id(self, operation: Any) -> str:
        return self.handler(operation.operation_id)

    def handler(self, operation_id: str) -> str:
        """The dotted name of the function that serves ``operation_id``."""
        return f"palo_api.handlers.{self._modules[operation_id]}.{operation_id}"


def load_spec(path: Path = SPEC_PATH) -> dict[str, Any]:
    """The OpenAPI document as a dict."""
    with path.open(encoding="utf-8") as handle:
        spec: dict[str, Any] = yaml.safe_load(handle)
    return spec


def create_app(settings: Settings | None = None) -> connexion.AsyncApp:
    """Build the ASGI app for ``settings`` (from the environment by default)."""
    settings = settings or Settings.from_env()
    runtime = Runtime.from_settings(settings)
    spec = load_spec()

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        yield
        runtime.database.dispose()

    app = connexion.AsyncApp(
        __name__,
        specification_dir=str(SPEC_PATH.parent),
        lifespan=lifespan,
        # UTF-8 as it is, without spaces: an escaped emoji takes 12 bytes.
        jsonifier=Jsonifier(ensure_ascii=False, separators=(",", ":")),
    )
    app.add_api(
        spec,
        resolver=TagResolver(spec),
        strict_validation=True,
        validate_responses=settings.validate_responses,
        resolver_error=501,
        validator_map=VALIDATOR_MAP,
        # The document is served by _serve_document, with its $refs intact.
        swagger_ui_options=SwaggerUIOptions(
            serve_spec=False, swagger_ui=True, spec_path="/openapi.json"
        ),
    )
    app.add_middleware(
        RequestContextMiddleware,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        runtime=runtime,
    )
    app.add_middleware(
        RouteMiddleware,
        position=MiddlewarePosition.BEFORE_SECURITY,
        routes=_route_templates(spec),
    )
    app.add_middleware(
        QuotaMiddleware, position=MiddlewarePosition.BEFORE_VALIDATION, runtime=runtime
    )
    _serve_document(app, spec)
    _serve_operations(app, runtime.database)
    _register_error_handlers(app, spec)
    return app


def public_document(spec: dict[str, Any]) -> dict[str, Any]:
    """The document as clients see it: without the server's Python hook names."""
    public = copy.deepcopy(spec)
    for scheme in public["components"]["securitySchemes"].values():
        for key in [k for k in scheme if k.startswith("x-") and k.endswith("Func")]:
            del scheme[key]
    return public


def _serve_document(app: connexion.AsyncApp, spec: dict[str, Any]) -> None:
    """Serve the hand-written document at /v1/openapi.json and .yaml.

    Connexion would serve its own copy with every $ref inlined (several
    times larger, and SDK generators lose the named schemas).
    """
    public = public_document(spec)
    as_json = json.dumps(public, ensure_ascii=False).encode()
    as_yaml = yaml.safe_dump(public, sort_keys=False, allow_unicode=True).encode()

    async def openapi_json(_request: Request) -> Response:
        return Response(as_json, media_type="application/json")

    async def openapi_yaml(_request: Request) -> Response:
        return Response(as_yaml, media_type="application/yaml")

    app.add_url_rule("/v1/openapi.json", "openapi_json", openapi_json, methods=["GET"])
    app.add_url_rule("/v1/openapi.yaml", "openapi_yaml", openapi_yaml, methods=["GET"])


def _route_templates(spec: dict[str, Any]) -> dict[str, str]:
    """Each operation's documented path, by the name Connexion routes it to."""
    resolver = TagResolver(spec)
    return {
        resolver.handler(operation["operationId"]): "/v1" + template
        for template, item in spec["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }


def _serve_operations(app: connexion.AsyncApp, database: Database) -> None:
    """``/healthz``, ``/readyz`` and ``/metrics``, outside the API and its quota.

    ``/healthz`` never touches the database: it is for a supervisor deciding
    whether to restart the process, which would not help when the database
    is away. ``/readyz`` says whether this host can serve requests now.
    Their database work runs on two threads of its own, within a deadline,
    so that probes against a database that hangs neither hang themselves
    nor take the threads requests need.
    """
    probes = ThreadPoolExecutor(max_workers=2, thread_name_prefix="palo-probe")

    async def probe(work: Callable[[Session], T]) -> T:
        def run() -> T:
            with database.read() as session:
                return work(session)

        future = asyncio.get_running_loop().run_in_executor(probes, run)
        return await asyncio.wait_for(future, PROBE_SECONDS)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"}, headers=NO_CACHE)

    async def readyz(_request: Request) -> Response:
        try:
            ready = await probe(monitoring.readiness)
        except (SQLAlchemyError, TimeoutError):
            ready = monitoring.Readiness(
                False, "The database cannot be reached within a few seconds."
            )
        if not ready.ready:
            error = errors.ServiceUnavailable(
                ready.reason, headers={**NO_CACHE, "Retry-After": "1"}
            )
            return errors.error_response(error)
        return JSONResponse({"status": "ready"}, headers=NO_CACHE)

    async def metrics_endpoint(_request: Request) -> Response:
        now = datetime.now(UTC)
        backlog: monitoring.Backlog | None
        try:
            backlog = await probe(lambda s: monitoring.webhook_backlog(s, now=now))
        except (SQLAlchemyError, TimeoutError):
            backlog = None
        body = await run_in_threadpool(metrics.exposition, backlog)
        return Response(body, media_type=metrics.CONTENT_TYPE_LATEST, headers=NO_CACHE)

    app.add_url_rule("/healthz", "healthz", healthz, methods=["GET"])
    app.add_url_rule("/readyz", "readyz", readyz, methods=["GET"])
    app.add_url_rule("/metrics", "metrics", metrics_endpoint, methods=["GET"])


def _register_error_handlers(app: connexion.AsyncApp, spec: dict[str, Any]) -> None:
    allowed = _allowed_methods(spec)

    def on_api_error(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        assert isinstance(exc, ApiError)
        if exc.status >= 500:
            _attach_error(exc)
        return _to_connexion(exc)

    def on_problem(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        assert isinstance(exc, ProblemException)
        if exc.status == 401 and request.url.path != TOKEN_PATH:
            missing = _missing_bearer(request.headers.get("authorization", ""))
            if missing is not None:
                return _to_connexion(missing)
        return _to_connexion(_translate_problem(exc))

    def on_http(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        assert isinstance(exc, HTTPException)
        error = _translate_http(exc, request.url.path, allowed)
        return _to_connexion(error)

    def on_database(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        _attach_error(exc)
        return _to_connexion(errors.ServiceUnavailable(headers={"Retry-After": "1"}))

    def on_bad_value(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        # Validation should stop such values first; this keeps a value the
        # database refuses from ever becoming a 500.
        logger.warning("database refused a value: %s", type(exc.__cause__).__name__)
        return _to_connexion(
            errors.ValidationFailed("A value in the request cannot be stored.")
        )

    def on_conflict(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        logger.warning("integrity conflict: %s", type(exc.__cause__).__name__)
        return _to_connexion(errors.Conflict())

    def on_unexpected(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        _attach_error(exc)
        return _to_connexion(ApiError())

    app.add_error_handler(ApiError, on_api_error)
    app.add_error_handler(ProblemException, on_problem)
    app.add_error_handler(HTTPException, on_http)
    app.add_error_handler(OperationalError, on_database)
    app.add_error_handler(WriterQueueTimeout, on_database)
    # Every pooled connection busy for the pool's whole timeout: as unavailable
    # as a database that does not answer, and as temporary.
    app.add_error_handler(PoolTimeout, on_database)
    app.add_error_handler(DataError, on_bad_value)
    app.add_error_handler(IntegrityError, on_conflict)
    app.add_error_handler(Exception, on_unexpected)


def _attach_error(exc: BaseException) -> None:
    """Keep the cause of a 5xx for the request's log line, which shows its
    traceback; outside a request, log it here."""
    state = current_or_none()
    if state is not None:
        state.error = exc
    else:
        logger.error("unhandled error", exc_info=exc)


def _missing_bearer(authorization: str) -> ApiError | None:
    """The error for a request that sent no bearer token at all, if it is one.

    RFC 6750, section 3.1: no token, or credentials of another scheme, is a
    request without authentication, not one with an invalid token.
    """
    scheme, _, token = authorization.strip().partition(" ")
    if not scheme:
        return errors.MissingCredentials()
    if scheme.lower() != "bearer":
        return errors.MissingCredentials(
            f"This operation needs a bearer token; the Authorization header "
            f"uses the {scheme[:20]!r} scheme."
        )
    if not token.strip():
        return errors.MissingCredentials(
            "The Authorization header names the Bearer scheme but holds no token."
        )
    return None


def _to_connexion(error: ApiError) -> ConnexionResponse:
    response = errors.error_response(error)
    return ConnexionResponse(
        status_code=error.status,
        mimetype="application/json",
        body=response.body,
        headers={k: v for k, v in error.headers.items()},
    )


def _translate_problem(exc: ProblemException) -> ApiError:
    detail = str(exc.detail or exc.title or "")
    status = exc.status
    if status == 400:
        return errors.BadRequest(detail or None, headers=exc.headers)
    if status == 401:
        return errors.Unauthenticated(_sentence(detail), headers=exc.headers)
    if status == 403:
        return errors.Forbidden(detail or None)
    if status == 415:
        return errors.UnsupportedMediaType(_sentence(detail))
    if status == 501:
        return errors.NotImplementedYet()
    if status >= 500:
        logger.error("%s: %s", type(exc).__name__, detail)
        return ApiError()
    error = ApiError(detail or None, headers=exc.headers)
    error.status, error.code = status, "invalid_request"
    return error


def _translate_http(
    exc: HTTPException, path: str, allowed: list[tuple[re.Pattern[str], str]]
) -> ApiError:
    if exc.status_code == 404:
        return errors.NotFound(f"No route matches {path[:200]}.")
    if exc.status_code == 405:
        methods = next((m for pattern, m in allowed if pattern.fullmatch(path)), "")
        return errors.MethodNotAllowed(headers={"Allow": methods} if methods else None)
    if exc.status_code == 403:
        return errors.Forbidden(exc.detail or None)
    if exc.status_code >= 500:
        return ApiError()
    error = ApiError(exc.detail or None, headers=exc.headers)
    error.status, error.code = exc.status_code, "invalid_request"
    return error


def _allowed_methods(spec: dict[str, Any]) -> list[tuple[re.Pattern[str], str]]:
    """For each documented path, a pattern and its ``Allow`` header value.

    Starlette's 405 names only one method of a path with several, so the
    header is built from the document instead.
    """
    base = "/v1"
    table = []
    for template, item in spec["paths"].items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(base + template))
        methods = ", ".join(m.upper() for m in HTTP_METHODS if m in item)
        table.append((re.compile(pattern), methods))
    return table


def _sentence(detail: str) -> str | None:
    if not detail:
        return None
    detail = detail.strip()
    return detail[0].upper() + detail[1:] + ("" if detail.endswith(".") else ".")
