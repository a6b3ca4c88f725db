"""Schema migrations with Alembic, configured in code: no ``alembic.ini`` at run time.

``wsgen db upgrade`` calls :func:`upgrade`; the embedded SQLite store calls
:func:`upgrade_engine` when it opens; a PostgreSQL store checks
:func:`is_current_engine` and refuses to start on an old schema.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from core.errors import ConfigError
from core.store.engine import create_engine, unavailable

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """Alembic's configuration for our migrations.

    Args:
        url: for Alembic's own commands (e.g. ``command.revision(..., autogenerate=True)``).
        connection: run on this connection, inside its transaction.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision of the migrations shipped with this version."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations in core/store/migrations/versions"
    return head


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection) -> str | None:
    if _current(connection) == head_revision():
        return head_revision()
    if connection.dialect.name == "sqlite":
        # Take the write lock first, so that the whole upgrade is one transaction
        # and concurrent upgraders (several workers starting) wait, then find it done.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    try:
        command.upgrade(alembic_config(connection=connection), "head")
    except CommandError as error:
        raise ConfigError(f"cannot upgrade the database schema: {error}") from None
    return _current(connection)


async def current_revision_engine(engine: AsyncEngine) -> str | None:
    """The schema revision of the database; None when it was never upgraded.

    Raises:
        StoreUnavailable: the database cannot be reached.
    """
    with unavailable("schema check"):
        async with engine.connect() as connection:
            return await connection.run_sync(_current)


async def is_current_engine(engine: AsyncEngine) -> bool:
    return await current_revision_engine(engine) == head_revision()


async def upgrade_engine(engine: AsyncEngine) -> str:
    """Migrate the database to the head revision, in one transaction; returns it.

    Raises:
        ConfigError: the database is at a revision these migrations do not know.
        StoreUnavailable: the database cannot be reached or is locked.
    """
    with unavailable("schema upgrade"):
        async with engine.begin() as connection:
            revision = await connection.run_sync(_upgrade)
    assert revision is not None
    return revision


async def current_revision(url: str) -> str | None:
    """:func:`current_revision_engine` for a database URL."""
    engine = create_engine(url)
    try:
        return await current_revision_engine(engine)
    finally:
        await engine.dispose()


async def is_current(url: str) -> bool:
    """True when the database at ``url`` is at the head revision."""
    return await current_revision(url) == head_revision()


async def upgrade_database(url: str) -> str:
    """:func:`upgrade_engine` for a database URL; returns the revision."""
    engine = create_engine(url)
    try:
        return await upgrade_engine(engine)
    finally:
        await engine.dispose()


def upgrade(database_url: str) -> str:
    """Synchronous :func:`upgrade_database`, for the CLI; returns the revision."""
    return asyncio.run(upgrade_database(database_url))
