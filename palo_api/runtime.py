"""What one PALO process builds once and shares between requests."""

from __future__ import annotations

from dataclasses import dataclass

from palo_api.config import Settings
from palo_api.db.engine import Database
from palo_api.secrets import SecretHasher
from palo_api.services.throttle import LoginThrottler
from palo_api.tokens import TokenService


@dataclass
class Runtime:
    settings: Settings
    database: Database
    tokens: TokenService
    hasher: SecretHasher
    throttle: LoginThrottler

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        """Build the engine, key set and hasher for ``settings``."""
        database = Database(settings.database_url)
        return cls(
            settings=settings,
            database=database,
            tokens=TokenService(settings),
            hasher=SecretHasher(),
            throttle=LoginThrottler(database, settings),
        )
