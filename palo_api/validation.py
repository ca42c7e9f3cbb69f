"""Request checks Connexion leaves out: formats, strict JSON, encodable strings.

Connexion validates with JSON Schema draft 4 and, by default, checks neither
``uuid`` nor ``date`` formats, answers 400 for a body that fails its schema,
and lets a body through that cannot even be encoded back as UTF-8 (lone
surrogates) or that Python cannot parse without crashing (deep nesting, huge
integers). Its parameter and form errors also quote the whole schema instead
of naming the field. This module closes each of those gaps;
:data:`VALIDATOR_MAP` is what the application hands Connexion.

NUL characters are valid JSON and are kept in JSON columns; the document's
``pattern`` keeps them out of the text fields PostgreSQL would refuse them in.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import jsonschema
from connexion.datastructures import MediaTypeDict
from connexion.utils import is_null, is_nullable
from connexion.validators import (
    DefaultsJSONRequestBodyValidator,
    FormDataValidator,
)
from connexion.validators import ParameterValidator as ConnexionParameterValidator
from jsonschema import Draft4Validator, ValidationError
from rfc3339_validator import validate_rfc3339
from starlette.datastructures import Headers, QueryParams
from starlette.formparsers import MultiPartException
from starlette.types import Receive, Scope

from palo_api.errors import BadRequest, InvalidJson, ValidationFailed

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
    if not validate_rfc3339(value.upper()):
        return False
    try:
        dt.datetime.fromisoformat(value.upper())
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
    """Refuse nesting past MAX_JSON_DEPTH and strings with lone surrogates."""
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
                child = f"{path}.{_display(key)}" if path else _display(key)
                _check_string(key, child)
                stack.append((item, child, depth + 1))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                stack.append((item, f"{path}[{index}]", depth + 1))


def _check_string(value: str, field: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationFailed(
            details=[{"field": field, "message": "must not contain lone surrogates"}]
        ) from None


def _display(key: str) -> str:
    """``key`` with NUL and lone surrogates escaped, safe to echo in an error."""
    escaped = key.replace("\x00", "\\u0000")
    return escaped.encode("utf-8", "backslashreplace").decode("utf-8")


# The characters str.strip() removes, spelled out: the document's patterns are
# read by ECMA-262 and Python regex engines alike, whose \s differ.
_BLANK = (
    r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f"
    r"\u205f\u3000"
)
# Patterns the document uses, said in words instead of as regular expressions.
PATTERN_MESSAGES = {
    rf"^[{_BLANK}]*[^\x00{_BLANK}][^\x00]*$": "must not be blank or contain NUL "
    "characters",
    r"^[^\x00]*$": "must not contain NUL characters",
}


def schema_details(errors: Iterable[ValidationError]) -> list[dict[str, str]]:
    """One ``{field, message}`` per faulty field, in words a client can show."""
    details: dict[str, str] = {}
    for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        path = [_display(str(part)) for part in error.absolute_path]
        for name, message in _describe(error):
            field = ".".join([*path, name] if name else path) or "body"
            details.setdefault(field, message)
    return [{"field": f, "message": m} for f, m in list(details.items())[:20]]


def _describe(error: ValidationError) -> list[tuple[str, str]]:
    """(sub-field, message) pairs for one error; sub-field "" is the error's own."""
    kind, value, instance = error.validator, error.validator_value, error.instance
    if kind == "required" and isinstance(instance, dict):
        return [(_display(k), "is required") for k in value if k not in instance]
    if kind == "additionalProperties" and isinstance(instance, dict):
        known = error.schema.get("properties", {})
        return [(_display(k), "is not allowed") for k in instance if k not in known]
    return [("", _sentence_for(str(kind), value, error))]


def _sentence_for(kind: str, value: Any, error: ValidationError) -> str:
    if kind == "pattern":
        return PATTERN_MESSAGES.get(str(value), "has an invalid format")
    if kind == "enum":
        return "must be one of: " + ", ".join(str(v) for v in value)
    if kind == "minLength" and value == 1:
        return "must not be empty"
    templates = {
        "maxLength": "must be at most {} characters long",
        "minLength": "must be at least {} characters long",
        "type": "must be of type {}",
        "format": "must be a valid {}",
        "minimum": "must be at least {}",
        "maximum": "must be at most {}",
        "minProperties": "must have at least {} field(s)",
        "maxProperties": "must have at most {} fields",
        "minItems": "must have at least {} item(s)",
        "maxItems": "must have at most {} items",
        "uniqueItems": "must not repeat an item",
    }
    template = templates.get(kind)
    return template.format(value) if template else error.message[:200]


class JsonBodyValidator(DefaultsJSONRequestBodyValidator):
    """Connexion's JSON body validator, with strict parsing and 422 with details."""

    @staticmethod
    def extend_with_set_default(validator_class: Any) -> Any:
        """Fill in schema defaults, in objects only.

        Connexion's version calls ``setdefault`` on whatever the body is, so a
        JSON array or string sent where an object belongs crashes it.
        """
        validate_properties = validator_class.VALIDATORS["properties"]

        def set_defaults(
            validator: Any, properties: dict[str, Any], instance: Any, schema: Any
        ) -> Iterator[ValidationError]:
            if isinstance(instance, dict):
                for name, subschema in properties.items():
                    if "default" in subschema:
                        instance.setdefault(name, subschema["default"])
            yield from validate_properties(validator, properties, instance, schema)

        return jsonschema.validators.extend(
            validator_class, {"properties": set_defaults}
        )

    async def wrap_receive(self, receive: Receive, *, scope: Scope) -> Any:
        # Connexion answers a missing body with its own 400 text.
        if self._required and not int(Headers(scope=scope).get("content-length") or 0):
            raise InvalidJson("A JSON request body is required.")
        return await super().wrap_receive(receive, scope=scope)

    async def _parse(self, stream: AsyncIterator[bytes], scope: Scope) -> Any:
        raw = b"".join([chunk async for chunk in stream])
        if not raw:
            return None
        return parse_json(raw)

    def _validate(self, body: Any) -> dict[str, Any] | None:
        if body is None:
            raise ValidationFailed("A JSON request body is required.")
        details = schema_details(self._validator.iter_errors(body))
        if details:
            raise ValidationFailed(
                "The request body does not match the schema.", details=details
            )
        return None


class FormBodyValidator(FormDataValidator):
    """Connexion's form validator, answering with OAuth 2.0 error codes.

    The only form the API takes is the OAuth 2.0 token request, whose clients
    expect RFC 6749's codes: ``unsupported_grant_type`` or ``invalid_request``.
    """

    async def wrap_receive(self, receive: Receive, *, scope: Scope) -> Any:
        # Connexion answers a missing body with its own code and text.
        if self._required and not int(Headers(scope=scope).get("content-length") or 0):
            raise BadRequest(
                "The token request form is empty; send grant_type=client_credentials.",
                code="invalid_request",
            )
        return await super().wrap_receive(receive, scope=scope)

    async def _parse(self, stream: AsyncIterator[bytes], scope: Scope) -> Any:
        try:
            form = await self._form_parser_cls(Headers(scope=scope), stream).parse()
        except (MultiPartException, UnicodeDecodeError, ValueError) as exc:
            # Starlette refuses more than 1,000 fields, among other things.
            raise BadRequest(
                f"The form body could not be read: {exc}", code="invalid_request"
            ) from exc
        counts = Counter(name for name, _ in form.multi_items())
        repeated = sorted(name for name, count in counts.items() if count > 1)
        if repeated:
            # RFC 6749, section 3.2: parameters must not be included more
            # than once; taking one of them would guess the client's intent.
            raise _form_fields_refused(
                "A form field appears more than once.", repeated, "must appear once"
            )
        return {name: value for name, value in form.multi_items()}

    def _validate(self, body: Any) -> dict[str, Any] | None:
        if not isinstance(body, dict):
            raise BadRequest("The form body could not be read.", code="invalid_request")
        unknown = sorted(set(body) - set(self._schema.get("properties", {})))
        if self._strict_validation and unknown:
            raise _form_fields_refused(
                "The form has unknown fields.", unknown, "is not allowed"
            )
        details = schema_details(self._validator.iter_errors(body))
        if not details:
            return None
        grant_refused = "grant_type" in body and any(
            d["field"] == "grant_type" for d in details
        )
        raise BadRequest(
            "Only the client_credentials grant is supported."
            if grant_refused
            else "The token request form is invalid.",
            code="unsupported_grant_type" if grant_refused else "invalid_request",
            details=details,
        )


def _form_fields_refused(message: str, names: list[str], problem: str) -> BadRequest:
    """An OAuth 2.0 ``invalid_request`` naming the faulty form fields."""
    return BadRequest(
        message,
        code="invalid_request",
        details=[{"field": _display(name), "message": problem} for name in names[:20]],
    )


# The document's parameters live as long as the app: each one's validator is
# built on its first request, not on every request.
_PARAMETER_VALIDATORS: dict[int, tuple[dict[str, Any], Draft4Validator]] = {}


def _parameter_validator(param: dict[str, Any]) -> Draft4Validator:
    """The validator of a parameter's schema, built once per parameter."""
    # Keyed by identity, the parameter kept alive beside its validator so
    # that its id cannot be reused by another.
    found = _PARAMETER_VALIDATORS.get(id(param))
    if found is None or found[0] is not param:
        validator = Draft4Validator(
            param.get("schema", param), format_checker=FORMAT_CHECKER
        )
        found = _PARAMETER_VALIDATORS[id(param)] = (param, validator)
    return found[1]


class ParameterValidator(ConnexionParameterValidator):
    """Connexion's parameter checks, answering 400 that names the parameter."""

    LOCATIONS = ("query", "path", "header", "cookie")

    @staticmethod
    def validate_parameter(
        parameter_type: str, value: Any, param: dict[str, Any], param_name: Any = None
    ) -> str | None:
        """Why ``value`` does not fit ``param``, in one short line, or None."""
        if value is None:
            return "is required" if param.get("required") else None
        if is_nullable(param) and is_null(value):
            return None
        error = jsonschema.exceptions.best_match(
            _parameter_validator(param).iter_errors(value)
        )
        if error is None:
            return None
        return (_describe(error) or [("", error.message[:200])])[0][1]

    def validate_request(self, request: Any) -> None:
        self._check_raw_query(request)
        if self.strict_validation:
            unknown = sorted(
                self.validate_query_parameter_list(
                    request, security_params=self.security_query_params
                )
            )
            if unknown:
                raise BadRequest(
                    f"Unknown query parameter: {_display(unknown[0])[:100]}.",
                    details=[
                        {"field": _display(name)[:100], "message": "is not a parameter"}
                        for name in unknown[:20]
                    ],
                )

        for location in self.LOCATIONS:
            check = getattr(self, f"validate_{location}_parameter")
            for param in self.parameters.get(location, []):
                problem = check(param, request)
                if problem:
                    name = param["name"]
                    raise BadRequest(
                        f"The {location} parameter '{name}' is invalid: {problem}",
                        details=[{"field": name, "message": problem}],
                    )

    def _check_raw_query(self, request: Any) -> None:
        """Refuse what Connexion would quietly coerce or drop.

        A parameter given twice would lose all but one value, and ``int()``
        accepts "1_0", "+5", " 7" and non-ASCII digits.
        """
        raw = QueryParams(request.scope.get("query_string", b""))
        for param in self.parameters.get("query", []):
            name, schema = param["name"], param.get("schema", {})
            values = raw.getlist(name)
            problem = None
            if len(values) > 1 and schema.get("type") != "array":
                problem = "is given more than once"
            elif (
                values
                and schema.get("type") == "integer"
                and not WHOLE_NUMBER.fullmatch(values[0])
            ):
                problem = "must be a whole number written in ASCII digits"
            if problem:
                raise BadRequest(
                    f"The query parameter '{name}' {problem}.",
                    details=[{"field": name, "message": problem}],
                )


WHOLE_NUMBER = re.compile(r"-?[0-9]{1,30}")

VALIDATOR_MAP: dict[str, Any] = {
    "parameter": ParameterValidator,
    "body": MediaTypeDict(
        {
            "application/json": JsonBodyValidator,
            "application/x-www-form-urlencoded": FormBodyValidator,
        }
    ),
}
