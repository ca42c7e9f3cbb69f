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
    return schema_state(connection) == "current"


def schema_state(connection: Connection) -> str:
    """``current``, ``behind`` (migrations to run), or ``ahead``: migrated by
    a newer release than this code, as during a rolling upgrade."""
    heads = set(MigrationContext.configure(connection).get_current_heads())
    if heads == _newest_heads():
        return "current"
    if heads - _known_revisions():
        return "ahead"
    return "behind"


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config("sqlite://"))


@functools.cache
def _newest_heads() -> frozenset[str]:
    """The head revisions this code's migrations lead to (read once)."""
    return frozenset(_script().get_heads())


@functools.cache
def _known_revisions() -> frozenset[str]:
    return frozenset(rev.revision for rev in _script().walk_revisions())
