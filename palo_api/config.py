"""Runtime configuration, read once from ``PALO_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# A fixed development key lets `make run` work with no setup; `is_development_key`
# lets operators (and start-up checks) tell it apart from a real one.
DEVELOPMENT_SIGNING_KEY = "dev:palo-development-signing-key-do-not-use-in-production"
DEFAULT_DATABASE_URL = f"sqlite:///{Path('var/palo.db').absolute()}"


class ConfigError(ValueError):
    """A ``PALO_*`` setting has a value the server cannot use."""


@dataclass(frozen=True)
class SigningKey:
    """One HMAC key for access tokens, named by its key id."""

    kid: str
    secret: bytes


@dataclass(frozen=True)
class Settings:
    """Every setting of a PALO process."""

    database_url: str = DEFAULT_DATABASE_URL
    signing_keys: tuple[SigningKey, ...] = field(default_factory=tuple)
    token_issuer: str = "https://api.palo.io"  # noqa: S105 - a URL, not a secret
    token_ttl_seconds: int = 3600
    refresh_max_age_seconds: int = 24 * 3600
    token_leeway_seconds: int = 30
    max_body_bytes: int = 1024 * 1024
    validate_responses: bool = False
    log_level: str = "INFO"
    log_format: str = "text"
    webhook_allow_private_targets: bool = False

    @property
    def active_signing_key(self) -> SigningKey:
        """The key that signs new tokens: the first configured one."""
        return self.signing_keys[0]

    @property
    def uses_development_key(self) -> bool:
        """Whether the well-known development key is among the signing keys."""
        dev = parse_signing_keys(DEVELOPMENT_SIGNING_KEY)[0]
        return any(key.secret == dev.secret for key in self.signing_keys)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from the environment, refusing unusable values."""
        env = os.environ if environ is None else environ
        return cls(
            database_url=env.get("PALO_DATABASE_URL", DEFAULT_DATABASE_URL),
            signing_keys=parse_signing_keys(
                env.get("PALO_SIGNING_KEYS", DEVELOPMENT_SIGNING_KEY)
            ),
            token_issuer=env.get("PALO_TOKEN_ISSUER", cls.token_issuer),
            token_ttl_seconds=_int(env, "PALO_TOKEN_TTL_SECONDS", 3600, 60, 86400),
            refresh_max_age_seconds=_int(
                env, "PALO_REFRESH_MAX_AGE_SECONDS", 24 * 3600, 60, 30 * 86400
            ),
            token_leeway_seconds=_int(env, "PALO_TOKEN_LEEWAY_SECONDS", 30, 0, 300),
            max_body_bytes=_int(
                env, "PALO_MAX_BODY_BYTES", 1024 * 1024, 1024, 64 * 1024 * 1024
            ),
            validate_responses=_bool(env, "PALO_VALIDATE_RESPONSES", False),
            log_level=_choice(
                env, "PALO_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")
            ),
            log_format=_choice(env, "PALO_LOG_FORMAT", "text", ("text", "json")),
            webhook_allow_private_targets=_bool(
                env, "PALO_WEBHOOK_ALLOW_PRIVATE_TARGETS", False
            ),
        )


def parse_signing_keys(raw: str) -> tuple[SigningKey, ...]:
    """Parse ``kid:secret[,kid:secret...]``; the first key signs, all verify."""
    keys = []
    for item in raw.split(","):
        kid, sep, secret = item.strip().partition(":")
        if not sep or not kid or len(secret.encode()) < 32:
            raise ConfigError(
                "PALO_SIGNING_KEYS must be 'kid:secret' pairs separated by commas, "
                "each secret at least 32 bytes long"
            )
        keys.append(SigningKey(kid=kid, secret=secret.encode()))
    if len({key.kid for key in keys}) != len(keys):
        raise ConfigError("PALO_SIGNING_KEYS names the same key id twice")
    return tuple(keys)


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, not {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def _choice(
    env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]
) -> str:
    raw = env.get(name, default)
    value = raw.upper() if choices[0].isupper() else raw.lower()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
    return value
