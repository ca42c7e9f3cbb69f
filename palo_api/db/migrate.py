"""Run Alembic migrations from code, so `palo db upgrade` needs no alembic.ini."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from palo_api.db.engine import normalise_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    """An Alembic configuration pointing at this package's migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Alembic's config is an INI file: '%' must be doubled.
    config.set_main_option(
        "sqlalchemy.url", normalise_url(database_url).replace("%", "%%")
    )
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database schema up to ``revision``."""
    command.upgrade(alembic_config(database_url), revision)


def is_current(engine: Engine, database_url: str) -> bool:
    """Whether the database is at the newest migration."""
    with engine.connect() as connection:
        return connection_is_current(connection)


def connection_is_current(connection: Connection) -> bool:
    """Whether the database ``connection`` reaches is at the newest migration."""
    current = MigrationContext.configure(connection).get_current_heads()
    return set(current) == newest_heads()


@functools.cache
def newest_heads() -> frozenset[str]:
    """The head revisions this code's migrations lead to (read once)."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return frozenset(script.get_heads())
