"""Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from palo_api.db import migrate
from palo_api.db.models import Base


def test_migrations_match_the_models(runtime) -> None:
    with runtime.database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)

    assert differences == []


def test_database_is_at_the_newest_migration(runtime, database_url: str) -> None:
    assert migrate.is_current(runtime.database.engine, database_url)


def test_upgrade_twice_is_harmless(database_url: str, runtime) -> None:
    migrate.upgrade(database_url)

    assert migrate.is_current(runtime.database.engine, database_url)
