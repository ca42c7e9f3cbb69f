"""The outermost ASGI layer: request ids, body limits, last-resort errors."""

from __future__ import annotations

import logging
import re
import time
import uuid
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from palo_api import metrics
from palo_api.context import RequestState, bind, current
from palo_api.errors import (
    ApiError,
    BadRequest,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    error_response,
)
from palo_api.runtime import Runtime
from palo_api.services import quotas
from palo_api.services.auth import Principal

logger = logging.getLogger(__name__)
# One line per request, under a name of its own so operators can route it.
request_log = logging.getLogger("palo_api.requests")

# str.isdigit() also accepts characters such as "²" that int() refuses.
CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
UI = "/v1/ui/"
# Routes outside the document, named as themselves in logs and metrics.
OPERATIONAL_ROUTES = frozenset(
    {"/healthz", "/readyz", "/metrics", "/v1/openapi.json", "/v1/openapi.yaml"}
)
# Probes and scrapes arrive every few seconds: their lines are DEBUG.
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
# The token operations never count against the daily quota (DESIGN.md).
# Connexion's routing names an operation by the handler it resolves to.
UNCOUNTED = frozenset(
    {"palo_api.handlers.auth.create_token", "palo_api.handlers.auth.refresh_token"}
)
SINGLETON_HEADERS = ("host", "authorization", "content-type", "x-request-id")
# A host name or IPv4 address, or an IPv6 literal, with an optional port.
HOST = re.compile(
    r"(?:[A-Za-z0-9._~!$&'()*+,;=%-]*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{0,5})?"
)


def incoming_request_id(value: str | None) -> uuid.UUID | None:
    """A client's X-Request-ID, kept only when it is a canonical UUID."""
    if not value or len(value) != 36:
        return None
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    # Any letter case is the same UUID; it is echoed in canonical lower case.
    return parsed if str(parsed) == value.lower() else None


class RequestContextMiddleware:
    """Binds the request's state, stamps X-Request-ID, checks the body, and
    writes the request's log line and metrics once it is answered.

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

        began = time.perf_counter()
        headers = Headers(scope=scope)
        request_id = incoming_request_id(headers.get("x-request-id")) or uuid.uuid4()
        state = RequestState(runtime=self.runtime, request_id=request_id)
        bind(state)
        status = 500
        try:
            status = await self._serve(scope, receive, send, state)
        finally:
            _log_request(scope, state, status, time.perf_counter() - began)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, state: RequestState
    ) -> int:
        """Answer the request; return the status it was answered with."""
        headers = Headers(scope=scope)
        stamp = str(state.request_id)
        started = False
        status = 500

        async def send_stamped(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                stamped = MutableHeaders(scope=message)
                for name, value in state.response_headers.items():
                    stamped.setdefault(name, value)
                stamped["X-Request-ID"] = stamp
            await send(message)

        if scope["path"] == UI.rstrip("/"):
            # A relative Location: Starlette's own redirect would be built
            # from the client's Host header.
            redirect = RedirectResponse(UI, status_code=307)
            await redirect(scope, receive, send_stamped)
            return status

        refusal = (
            _check_head(scope, headers)
            or _check_path(scope)
            or self._check_length(headers.get("content-length"))
        )
        if refusal is None and "content-length" not in headers:
            receive, refusal = await self._buffered(scope, receive)
        if refusal is None:
            refusal = _check_content_type(scope)
        if refusal is not None:
            await error_response(refusal)(scope, receive, send_stamped)
            return status

        try:
            await self.app(scope, self._capped(receive), send_stamped)
        except Exception as exc:
            if started:
                state.error = exc
                raise
            error = exc if isinstance(exc, ApiError) else ApiError()
            if not isinstance(exc, ApiError):
                state.error = exc
            await error_response(error)(scope, receive, send_stamped)
        return status

    def _check_length(self, raw: str | None) -> ApiError | None:
        if raw is None:
            return None
        if not CONTENT_LENGTH.fullmatch(raw):
            return BadRequest("The Content-Length header is invalid.")
        if int(raw) > self.max_body:
            return PayloadTooLarge(
                f"The request body exceeds the limit of {self.max_body} bytes."
            )
        return None

    async def _buffered(
        self, scope: Scope, receive: Receive
    ) -> tuple[Receive, ApiError | None]:
        """Read a body sent without Content-Length (chunked) up to the limit.

        Connexion takes a request without Content-Length for one without a
        body, so the body is read here and given the header it lacked.
        """
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return _replay([message], receive), None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                return receive, PayloadTooLarge(
                    f"The request body exceeds the limit of {self.max_body} bytes."
                )
            if not message.get("more_body", False):
                break

        body = b"".join(chunks)
        if body:
            MutableHeaders(scope=scope)["content-length"] = str(len(body))
        replayed = {"type": "http.request", "body": body, "more_body": False}
        return _replay([replayed], receive), None

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


class RouteMiddleware:
    """Notes which documented operation the request was routed to.

    It runs right after Connexion's routing and before its security check, so
    that even a refused request is logged and counted under its route.
    """

    def __init__(self, app: ASGIApp, routes: dict[str, str]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        operation_id = _operation_id(scope)
        if scope["type"] == "http" and operation_id is not None:
            current().route = self.routes.get(operation_id)
        await self.app(scope, receive, send)


class QuotaMiddleware:
    """Counts each authenticated request against its organization's quota.

    It sits after Connexion's security check and before request validation,
    so every request that authenticated counts, whatever its status, and a
    spent quota is refused before any other work. The token operations do
    not count.
    """

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = _principal(scope)
        if (
            principal is not None
            and _operation_id(scope) not in UNCOUNTED
            # A plan without a limit counts nothing: no thread, no session.
            and quotas.daily_limit(principal.plan) is not None
        ):
            database = self.runtime.database

            def take() -> quotas.QuotaState | None:
                with database.write() as session:
                    state = quotas.take(
                        session=session,
                        org_id=principal.org_id,
                        plan=principal.plan,
                        now=datetime.now(UTC),
                    )
                    session.commit()
                    return state

            try:
                quota = await run_in_threadpool(take)
            except quotas.PlanHasNoApiAccess:
                metrics.QUOTA_REJECTIONS.labels(principal.plan, "no_api_access").inc()
                raise
            except quotas.QuotaExceeded:
                metrics.QUOTA_REJECTIONS.labels(principal.plan, "quota_exceeded").inc()
                raise
            if quota is not None:
                current().response_headers.update(quota.headers())
        await self.app(scope, receive, send)


def _log_request(
    scope: Scope, state: RequestState, status: int, seconds: float
) -> None:
    """The request's one log line, and its count and latency."""
    path: str = scope["path"]
    route = state.route
    if route is None:
        if path in OPERATIONAL_ROUTES:
            route = path
        elif path.startswith(UI):
            route = UI + "{file}"
    method: str = scope["method"]
    # Unmatched paths share one label, and so do unknown methods: clients
    # choose them, without limit.
    label = route or "unmatched"
    verb = metrics.method_label(method)
    metrics.HTTP_REQUESTS.labels(verb, label, str(status)).inc()
    metrics.HTTP_LATENCY.labels(verb, label, str(status)).observe(seconds)

    if route in QUIET_ROUTES:
        # Probes repeat every few seconds: a failing one is a warning (the
        # outage behind it is logged by the requests it fails).
        level = logging.DEBUG if status < 400 else logging.WARNING
    elif status >= 500:
        level = logging.ERROR
    else:
        level = logging.INFO
    if not request_log.isEnabledFor(level):
        return
    request_log.log(
        level,
        "%s %s %d",
        method,
        route or path[:200],
        status,
        exc_info=state.error if status >= 500 else None,
        extra={
            "fields": {
                "request_id": str(state.request_id),
                "method": method,
                "route": route,
                "path": path[:200],
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "org_id": str(state.org_id) if state.org_id else None,
                "client_id": state.client_id,
            }
        },
    )


def _principal(scope: Scope) -> Principal | None:
    token_info = scope.get("extensions", {}).get("connexion_context", {})
    principal = (token_info.get("token_info") or {}).get("principal")
    return principal if isinstance(principal, Principal) else None


def _operation_id(scope: Scope) -> str | None:
    routing = scope.get("extensions", {}).get("connexion_routing", {})
    operation_id = routing.get("operation_id")
    return operation_id if isinstance(operation_id, str) else None


def _check_head(scope: Scope, headers: Headers) -> ApiError | None:
    """Request heads HTTP/1.1 forbids, which the server layer lets through.

    A header that may appear once and appears twice is refused rather than
    read one way here and another way by a proxy in front.
    """
    hosts = headers.getlist("host")
    if scope.get("http_version") == "1.1" and not hosts:
        return BadRequest(
            "An HTTP/1.1 request needs a Host header.", code="invalid_request"
        )
    if hosts and not HOST.fullmatch(hosts[0]):
        return BadRequest("The Host header is malformed.", code="invalid_request")
    for name in SINGLETON_HEADERS:
        if len(headers.getlist(name)) > 1:
            return BadRequest(
                f"The {name} header appears more than once.", code="invalid_request"
            )
    return None


def _check_path(scope: Scope) -> ApiError | None:
    """Paths no route has, which routing would otherwise mistake for one.

    No route of the API ends with a slash, and ``/v1`` is none either:
    Starlette would answer them with a redirect built from the client's own
    Host header, before authentication and outside the document (the
    interactive UI, which lives under a folder, is the exception). An encoded
    slash is data, not a separator: the server decodes it before routing,
    so ``/v1%2Fprojects`` would reach ``/v1/projects`` behind the back of any
    proxy rule written on the raw path.
    """
    path: str = scope["path"]
    raw_path: bytes = scope.get("raw_path") or path.encode()
    trailing = path.endswith("/") and path.startswith("/v1/")
    if (
        (trailing and not path.startswith(UI))
        or path == "/v1"
        or b"%2f" in raw_path.lower()
    ):
        return NotFound(f"No route matches {path[:200]}.")
    return None


def _check_content_type(scope: Scope) -> ApiError | None:
    """Lower-case the media type, and refuse a body that does not name one.

    Media types are case-insensitive, but Connexion looks its body validators
    up case-sensitively: ``Application/JSON`` would skip validation entirely.
    Without any Content-Type, Connexion validates the body as JSON and then
    hands the handler raw bytes.
    """
    headers = MutableHeaders(scope=scope)
    has_body = int(headers.get("content-length", "0")) > 0
    codings = {
        coding.strip().lower()
        for value in headers.getlist("content-encoding")
        for coding in value.split(",")
    } - {"", "identity"}
    if has_body and codings:
        return UnsupportedMediaType(
            f"Content-Encoding {', '.join(sorted(codings))[:60]!r} is not "
            "supported; send the body uncompressed."
        )
    raw = headers.get("content-type")
    if raw is None:
        if has_body and scope["method"] in BODY_METHODS:
            return UnsupportedMediaType(
                "The request has a body but no Content-Type header; "
                "send application/json."
            )
        return None

    media_type, separator, parameters = raw.partition(";")
    normalised = media_type.strip().lower()
    if normalised != media_type:
        headers["content-type"] = f"{normalised}{separator}{parameters}"
    return None


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive channel that yields ``messages`` first, then ``receive``'s."""
    pending = list(messages)

    async def replaying() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replaying
