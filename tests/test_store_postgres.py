"""The SQL store on a real PostgreSQL: the same migrations and behaviour as on SQLite (SPEC §8)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import UTC

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect

from core.errors import ConfigError, InvalidRecord, RoomExists, RoomNotFound
from core.store import SqlStore
from core.store.engine import create_engine
from core.store.migrate import alembic_config, current_revision, head_revision
from core.store.schema import metadata
from tests.conftest import WSGEN
from tests.services import PostgresCluster

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def empty_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """A new, empty PostgreSQL database (never migrated)."""
    name = postgres_cluster.create_database()
    try:
        yield postgres_cluster.url(name)
    finally:
        postgres_cluster.drop_database(name)


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[SqlStore]:
    """An open store on the session's migrated, emptied database."""
    opened = await SqlStore.open(postgres_url)
    try:
        yield opened
    finally:
        await opened.close()


def db_upgrade(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WSGEN_DATABASE_URL": url}
    return subprocess.run([WSGEN, "db", "upgrade"], env=env, capture_output=True, text=True)


async def test_the_server_refuses_an_unmigrated_database_until_db_upgrade(empty_url: str) -> None:
    """PostgreSQL is not upgraded at start: the store names `wsgen db upgrade`, which fixes it."""
    with pytest.raises(ConfigError, match="wsgen db upgrade"):
        await SqlStore.open(empty_url)
    for _ in range(2):  # again is a no-op
        result = db_upgrade(empty_url)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"database at revision {head_revision()} (head)\n"
    assert await current_revision(empty_url) == head_revision()
    store = await SqlStore.open(empty_url)
    await store.close()


async def test_migrations_create_exactly_the_schema(empty_url: str) -> None:
    """`wsgen db upgrade` creates exactly schema.metadata (per Alembic); downgrade empties it."""

    def differences(conn: Connection) -> list[object]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    def downgrade_and_list(conn: Connection) -> list[str]:
        command.downgrade(alembic_config(connection=conn), "base")
        return inspect(conn).get_table_names()

    assert db_upgrade(empty_url).returncode == 0
    engine = create_engine(empty_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(differences) == []
        async with engine.begin() as conn:
            assert await conn.run_sync(downgrade_and_list) == ["alembic_version"]
    finally:
        await engine.dispose()


async def test_rooms_messages_and_notifications_round_trip(store: SqlStore) -> None:
    """Rooms, participants, messages and notifications behave as on SQLite, in UTC milliseconds."""
    room = await store.create_room("r1", ["carol", "alice", "carol"])
    assert room.participants == ["carol", "alice"]
    with pytest.raises(RoomExists):
        await store.create_room("r1", [])
    with pytest.raises(RoomNotFound):
        await store.save_message("nope", "alice", "x")
    with pytest.raises(InvalidRecord, match="text"):
        await store.save_message("r1", "alice", "a\x00b")
    saved = await store.save_message("r1", "alice", "héllo ✓")
    assert saved.timestamp.tzinfo is UTC and saved.timestamp.microsecond % 1000 == 0
    page = await store.list_messages("r1", 10, None)
    assert page.items == [saved] and page.next_cursor is None
    assert await store.remove_participant("r1", "carol") is True
    assert await store.participants("r1") == ["alice"]
    note = await store.create_notification("alice", "t", "title", "body")
    assert (await store.list_notifications("alice", 10, None)).items == [note]


async def test_paging_under_concurrent_writes_lists_every_message_once(store: SqlStore) -> None:
    """Messages written concurrently are each listed exactly once by cursor paging."""
    await store.create_room("r1", ["alice"])
    saved = await asyncio.gather(*(store.save_message("r1", "alice", f"m{i}") for i in range(60)))
    seen: list[str] = []
    before: str | None = None
    while True:
        page = await store.list_messages("r1", 7, before)
        seen += [m.id for m in page.items]
        if (before := page.next_cursor) is None:
            break
    assert sorted(seen) == sorted(m.id for m in saved) and len(seen) == 60
