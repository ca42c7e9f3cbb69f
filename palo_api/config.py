"""Runtime configuration, read once from ``PALO_*`` environment variables."""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_DATABASE_URL = f"sqlite:///{Path('var/palo.db').absolute()}"
# Without PALO_SIGNING_KEYS, a random key is made once and kept here, so that a
# fresh install never signs with a key anyone could read.
DEFAULT_SIGNING_KEY_FILE = Path("var/signing-key").absolute()


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
    signing_key_file: Path | None = None
    token_issuer: str = "https://api.palo.io"  # noqa: S105 - a URL, not a secret
    token_ttl_seconds: int = 3600
    refresh_max_age_seconds: int = 24 * 3600
    token_leeway_seconds: int = 30
    max_body_bytes: int = 1024 * 1024
    head_timeout_seconds: int = 30
    validate_responses: bool = False
    log_level: str = "INFO"
    log_format: str = "text"
    environment: str = "development"
    metrics_dir: Path | None = None
    login_max_failures: int = 10
    login_max_failures_per_address: int = 50
    login_window_seconds: int = 900
    trusted_proxies: str = "127.0.0.1,::1"
    webhook_allow_private_targets: bool = False

    @property
    def active_signing_key(self) -> SigningKey:
        """The key that signs new tokens: the first configured one."""
        return self.signing_keys[0]

    @property
    def is_production(self) -> bool:
        """Whether ``PALO_ENV=production``: stricter start-up checks, JSON logs."""
        return self.environment == "production"

    def refuse_development_settings(self) -> None:
        """In production, refuse what only suits one developer's machine.

        The key generated in ``var/signing-key`` is one host's: tokens it
        signs do not verify on the others, and nobody rotates it on purpose.
        """
        if self.is_production and self.uses_local_key_file:
            raise ConfigError(
                "PALO_ENV=production needs PALO_SIGNING_KEYS: serving with the "
                f"development key generated in {self.signing_key_file} is refused"
            )

    @property
    def uses_local_key_file(self) -> bool:
        """Whether the signing key was generated on this host (no shared key)."""
        return self.signing_key_file is not None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from the environment, refusing unusable values."""
        env = os.environ if environ is None else environ
        key_file = None
        environment = _choice(
            env, "PALO_ENV", "development", ("development", "production")
        )
        if env.get("PALO_SIGNING_KEYS"):
            signing_keys = parse_signing_keys(env["PALO_SIGNING_KEYS"])
        else:
            key_file = Path(env.get("PALO_SIGNING_KEY_FILE", DEFAULT_SIGNING_KEY_FILE))
            signing_keys = (local_signing_key(key_file),)
        return cls(
            database_url=_database_url(env),
            signing_keys=signing_keys,
            signing_key_file=key_file,
            token_issuer=_issuer(env),
            token_ttl_seconds=_int(env, "PALO_TOKEN_TTL_SECONDS", 3600, 60, 86400),
            refresh_max_age_seconds=_int(
                env, "PALO_REFRESH_MAX_AGE_SECONDS", 24 * 3600, 60, 30 * 86400
            ),
            token_leeway_seconds=_int(env, "PALO_TOKEN_LEEWAY_SECONDS", 30, 0, 300),
            max_body_bytes=_int(
                env, "PALO_MAX_BODY_BYTES", 1024 * 1024, 1024, 64 * 1024 * 1024
            ),
            head_timeout_seconds=_int(env, "PALO_HEAD_TIMEOUT_SECONDS", 30, 1, 300),
            validate_responses=_bool(env, "PALO_VALIDATE_RESPONSES", False),
            log_level=_choice(
                env, "PALO_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")
            ),
            log_format=_choice(
                env,
                "PALO_LOG_FORMAT",
                "json" if environment == "production" else "text",
                ("text", "json"),
            ),
            environment=environment,
            metrics_dir=_directory(env, "PALO_METRICS_DIR"),
            login_max_failures=_int(env, "PALO_LOGIN_MAX_FAILURES", 10, 1, 10_000),
            login_max_failures_per_address=_int(
                env, "PALO_LOGIN_MAX_FAILURES_PER_ADDRESS", 50, 1, 100_000
            ),
            login_window_seconds=_int(
                env, "PALO_LOGIN_WINDOW_SECONDS", 900, 1, 7 * 86400
            ),
            trusted_proxies=_networks(env, "PALO_TRUSTED_PROXIES", cls.trusted_proxies),
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


def local_signing_key(path: Path) -> SigningKey:
    """The key kept in ``path``, generated there first if the file is missing.

    Several workers may start at once: the key is written to a private
    temporary file and linked into place, so exactly one of them creates it
    and every one reads the same key.
    """
    try:
        if not path.exists():
            _generate_key_file(path)
        text = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(
            f"PALO_SIGNING_KEY_FILE {path} cannot be read or created: "
            f"{exc.strerror or exc}"
        ) from exc
    try:
        return parse_signing_keys(text)[0]
    except ConfigError:
        raise ConfigError(
            f"PALO_SIGNING_KEY_FILE {path} must hold one 'kid:secret' line, "
            "the secret at least 32 bytes long"
        ) from None


def _generate_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"local:{secrets.token_urlsafe(48)}\n")
    try:
        os.link(draft, path)
    except FileExistsError:
        pass  # another process made it first; use theirs
    finally:
        draft.unlink()


def configured_database_url(environ: Mapping[str, str] | None = None) -> str:
    """The database ``PALO_DATABASE_URL`` names, or the default SQLite file."""
    return _database_url(os.environ if environ is None else environ)


def _database_url(env: Mapping[str, str]) -> str:
    raw = env.get("PALO_DATABASE_URL", DEFAULT_DATABASE_URL)
    try:
        backend = make_url(raw).get_backend_name()
    except ArgumentError:
        raise ConfigError(
            f"PALO_DATABASE_URL is not a database URL: {raw!r}; "
            "use sqlite:///path/to/file.db or postgresql://user@host/dbname"
        ) from None
    if backend not in ("sqlite", "postgresql", "postgres"):
        raise ConfigError(
            f"PALO_DATABASE_URL must point at SQLite or PostgreSQL, not {backend!r}"
        )
    return raw


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


def _networks(env: Mapping[str, str], name: str, default: str) -> str:
    """Comma-separated addresses or networks (or ``*``), checked and normalised."""
    raw = env.get(name, default)
    items = [item.strip() for item in raw.split(",") if item.strip()]
    for item in items:
        if item == "*":
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(
                f"{name} must list IP addresses or networks separated by commas "
                f"(or *), and {item!r} is neither"
            ) from None
    return ",".join(items)


def _issuer(env: Mapping[str, str]) -> str:
    raw = env.get("PALO_TOKEN_ISSUER", Settings.token_issuer)
    if not raw.strip() or raw != raw.strip():
        raise ConfigError(
            f"PALO_TOKEN_ISSUER must be a non-empty identifier without "
            f"surrounding spaces (usually the API's URL), not {raw!r}"
        )
    return raw


def _directory(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name)
    if not raw:
        return None
    path = Path(raw).absolute()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{name} must name a directory, and {raw!r} is a file")
    return path


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
