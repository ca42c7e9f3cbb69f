"""Structured logging: JSON lines for machines, aligned text for a terminal.

Every record goes through structlog's processors, whether it comes from our
code, from gunicorn, uvicorn, SQLAlchemy or Alembic, so a production log is
one JSON object per line. Records made during a request carry its
``request_id``. Whatever the source, values that look like credentials are
masked before they are written.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from palo_api.config import Settings
from palo_api.context import current_request_id

# Keys whose values are credentials whatever they hold.
SECRET_KEYS = re.compile(
    r"authorization|token|secret|password|passwd|cookie|api[-_]?key|signature",
    re.IGNORECASE,
)
# A JWT (three base64url parts, the first two JSON objects), a bearer or basic
# credential in running text, and our own client secrets and webhook secrets.
SECRET_TEXT = re.compile(
    r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"
    r"|(?i:bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"
    # Client secrets are base64url, webhook secrets standard base64; either
    # may be glued to other text, so no word boundary is asked for.
    r"|(?:palo_cs|whsec)_[A-Za-z0-9+/=_-]{8,}"
)
# Characters that would let logged text forge a line, or drive a terminal:
# C0 and C1 controls, DEL, and Unicode's line and paragraph separators.
UNPRINTABLE = {
    code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)
}
MASK = "[redacted]"


def configure_logging(settings: Settings | None = None) -> None:
    """Send every log record to stderr, rendered as ``settings`` asks."""
    settings = settings or Settings.from_env()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(settings.log_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # Connexion warns on every request to an operation with two body media
    # types (the token endpoint's JSON and OAuth2 form), which is by design.
    logging.getLogger("connexion.operations").setLevel(logging.ERROR)
    # Every request without credentials, and each look at the schema version
    # (readiness probes), would otherwise add an INFO line of their own.
    logging.getLogger("connexion.security").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime").setLevel(logging.WARNING)
    # httpx names every URL it calls at INFO; webhook URLs may carry tokens.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def formatter(log_format: str) -> logging.Formatter:
    """A stdlib formatter that renders any record through structlog."""
    renderer: Processor
    if log_format == "json":
        # ASCII only: no raw U+2028 or U+0085 for a reader to split lines on.
        renderer = structlog.processors.JSONRenderer()
        last: list[Processor] = [structlog.processors.format_exc_info]
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=False,
            exception_formatter=structlog.dev.plain_traceback,
            timestamp_key="time",
        )
        last = [structlog.processors.format_exc_info, _escape_unprintable]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *last,
            _redact,
            renderer,
        ],
    )


def get_logger(name: str) -> Any:
    """A structlog logger; keyword arguments become fields of the record."""
    return structlog.stdlib.get_logger(name)


def _shared_processors() -> list[Processor]:
    return [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
        _add_request_id,
        _add_fields,
    ]


def _add_fields(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    """Fields a stdlib call passed as ``extra={"fields": {...}}``."""
    fields = getattr(event.get("_record"), "fields", None)
    if isinstance(fields, dict):
        for key, value in fields.items():
            event.setdefault(key, value)
    return event


def _add_request_id(
    _logger: WrappedLogger, _method: str, event: EventDict
) -> EventDict:
    request_id = current_request_id()
    if request_id is not None:
        event.setdefault("request_id", str(request_id))
    return event


def _redact(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    """Mask credentials: by the field's name, and inside any text."""
    return _redact_mapping(event)


def _escape_unprintable(
    _logger: WrappedLogger, _method: str, event: EventDict
) -> EventDict:
    """Write control characters in text values as escapes, for the text format."""
    for key, value in event.items():
        # A traceback spans lines by nature; the renderer writes it below.
        if isinstance(value, str) and key != "exception":
            event[key] = value.translate(UNPRINTABLE)
    return event


def _redact_mapping(mapping: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(mapping.items()):
        if isinstance(key, str) and SECRET_KEYS.search(key) and value is not None:
            mapping[key] = MASK
        else:
            mapping[key] = _redact_value(value)
    return mapping


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return SECRET_TEXT.sub(MASK, value)
    if isinstance(value, dict):
        return _redact_mapping(dict(value))
    if isinstance(value, list | tuple):
        return [_redact_value(item) for item in value]
    return value
