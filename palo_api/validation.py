"""Request checks Connexion leaves out: formats, strict JSON, storable strings.

Connexion validates with JSON Schema draft 4 and, by default, checks neither
``uuid`` nor ``date`` formats, answers 400 for a body that fails its schema,
and lets a body through that no database can store (NUL characters, lone
surrogates) or that Python cannot even parse without crashing (deep nesting,
huge integers). This module closes each of those gaps.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections.abc import AsyncIterator
from typing import Any

from connexion.validators import DefaultsJSONRequestBodyValidator
from jsonschema import Draft4Validator, ValidationError
from rfc3339_validator import validate_rfc3339
from starlette.types import Scope

from palo_api.errors import InvalidJson, ValidationFailed

MAX_JSON_DEPTH = 32
FORMAT_CHECKER = Draft4Validator.FORMAT_CHECKER


@FORMAT_CHECKER.checks("uuid", raises=ValueError)
def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return True
    # uuid.UUID also takes braces and "urn:uuid:" prefixes; the API does not.
    return len(value) == 36 and str(uuid.UUID(value)) == value.lower()


@FORMAT_CHECKER.checks("date", raises=ValueError)
def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return len(value) == 10 and dt.date.fromisoformat(value) is not None


@FORMAT_CHECKER.checks("date-time")
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not validate_rfc3339(value):
        return False
    try:
        dt.datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return False  # e.g. a leap second, which Python cannot represent
    return True


@FORMAT_CHECKER.checks("email")
def _is_email(value: object) -> bool:
    if not isinstance(value, str):
        return True
    local, at, domain = value.rpartition("@")
    return bool(at and local and "." in domain and not any(c.isspace() for c in value))


@FORMAT_CHECKER.checks("uri")
def _is_uri(value: object) -> bool:
    from urllib.parse import urlsplit

    if not isinstance(value, str):
        return True
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return bool(parts.scheme and parts.netloc) and not any(c.isspace() for c in value)


def parse_json(raw: bytes) -> Any:
    """Parse a request body strictly, raising :class:`InvalidJson` on any doubt."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidJson("The request body is not valid UTF-8.") from exc
    try:
        document = json.loads(
            text,
            object_pairs_hook=_no_duplicate_keys,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
        )
    except RecursionError as exc:
        raise InvalidJson("The request body is nested too deeply.") from exc
    except ValueError as exc:
        # JSONDecodeError, duplicate keys, NaN, and integers past Python's limit.
        raise InvalidJson(f"The request body is not valid JSON: {exc}") from exc
    _check_storable(document)
    return document


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key!r}")
            seen.add(key)
    return result


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _check_storable(document: Any) -> None:
    """Refuse nesting past MAX_JSON_DEPTH and strings no database can store."""
    stack: list[tuple[Any, str, int]] = [(document, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidJson(
                f"The request body is nested more than {MAX_JSON_DEPTH} levels deep."
            )
        if isinstance(value, str):
            _check_string(value, path or "body")
        elif isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else key
                _check_string(key, child)
                stack.append((item, child, depth + 1))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                stack.append((item, f"{path}[{index}]", depth + 1))


def _check_string(value: str, field: str) -> None:
    if "\x00" in value:
        raise ValidationFailed(
            details=[{"field": field, "message": "must not contain NUL characters"}]
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationFailed(
            details=[{"field": field, "message": "must not contain lone surrogates"}]
        ) from None


def _error_field(error: ValidationError) -> str:
    parts = [str(part) for part in error.absolute_path]
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [k for k in error.validator_value if k not in error.instance]
        parts += missing[:1]
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = error.schema.get("properties", {})
        extra = [k for k in error.instance if k not in allowed]
        parts += extra[:1]
    return ".".join(parts) or "body"


class JsonBodyValidator(DefaultsJSONRequestBodyValidator):
    """Connexion's JSON body validator, with strict parsing and 422 with details."""

    async def _parse(self, stream: AsyncIterator[bytes], scope: Scope) -> Any:
        raw = b"".join([chunk async for chunk in stream])
        if not raw:
            return None
        return parse_json(raw)

    def _validate(self, body: Any) -> dict[str, Any] | None:
        if body is None:
            raise ValidationFailed("A JSON request body is required.")
        errors = sorted(
            self._validator.iter_errors(body), key=lambda e: list(e.absolute_path)
        )
        if errors:
            details = [
                {"field": _error_field(error), "message": error.message[:500]}
                for error in errors[:20]
            ]
            raise ValidationFailed(
                "The request body does not match the schema.", details=details
            )
        return None
