"""The SQL store on a real SQLite file: rooms, messages, notifications, paging, migrations."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from typer.testing import CliRunner

from cli import db
from core.errors import ConfigError, RoomExists, RoomNotFound, StoreUnavailable
from core.models import ChatMessage, Notification
from core.store import SqlStore, open_store
from core.store.engine import async_url, create_engine
from core.store.migrate import (
    alembic_config,
    current_revision,
    head_revision,
    is_current,
    upgrade_database,
)
from core.store.paging import encode_cursor
from core.store.schema import metadata

# Everything here talks to a database: nothing may hang.
pytestmark = pytest.mark.timeout(5)

FIXED = datetime(2026, 11, 29, 10, 0, 0, 123000, tzinfo=UTC)


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A SQLite URL in a directory that does not exist yet."""
    return f"sqlite:///{tmp_path / 'data' / 'chat.db'}"


@pytest.fixture
async def store(url: str) -> AsyncIterator[SqlStore]:
    """An open store on a fresh, self-upgraded SQLite file."""
    opened = await SqlStore.open(url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def room(store: SqlStore) -> str:
    """A room with alice and bob."""
    return (await store.create_room("r1", ["alice", "bob"])).id


async def test_create_room_keeps_participants_once_in_order(store: SqlStore) -> None:
    """Duplicate participants are dropped and the given order is kept."""
    created = await store.create_room("r1", ["carol", "alice", "carol", "bob", "alice"])
    assert created.id == "r1"
    assert created.participants == ["carol", "alice", "bob"]
    assert created.created_at.tzinfo is UTC and created.created_at.microsecond % 1000 == 0
    assert sorted(await store.participants("r1")) == ["alice", "bob", "carol"]


async def test_create_room_without_id_gets_a_uuid(store: SqlStore) -> None:
    """A room created with id None gets a fresh UUID (version 7, see core.ids)."""
    first = await store.create_room(None, [])
    second = await store.create_room(None, [])
    assert len(first.id) == 36 and first.id != second.id
    assert await store.room_exists(first.id)
    assert await store.participants(first.id) == []


async def test_create_room_with_a_taken_id_raises_room_exists(store: SqlStore, room: str) -> None:
    """A second room with the same id raises RoomExists and changes nothing."""
    with pytest.raises(RoomExists, match="r1"):
        await store.create_room(room, ["mallory"])
    assert sorted(await store.participants(room)) == ["alice", "bob"]


async def test_create_room_rejects_bad_arguments(store: SqlStore) -> None:
    """A bare string of participants and over-long ids are refused before any write."""
    with pytest.raises(TypeError):
        await store.create_room("r2", "alice")
    with pytest.raises(ValueError, match="room_id"):
        await store.create_room("x" * 129, [])
    with pytest.raises(ValueError, match="user_id"):
        await store.create_room("r2", [""])
    assert not await store.room_exists("r2")


async def test_room_exists_and_is_participant(store: SqlStore, room: str) -> None:
    """Membership is true only for a participant of an existing room."""
    assert await store.room_exists(room)
    assert not await store.room_exists("nope")
    assert await store.is_participant(room, "alice")
    assert not await store.is_participant(room, "mallory")
    assert not await store.is_participant("nope", "alice")


async def test_participants_of_a_missing_room_raises(store: SqlStore) -> None:
    """participants() on an unknown room raises RoomNotFound."""
    with pytest.raises(RoomNotFound):
        await store.participants("nope")


async def test_add_participant_is_idempotent(store: SqlStore, room: str) -> None:
    """Adding a user twice leaves one membership."""
    await store.add_participant(room, "carol")
    await store.add_participant(room, "carol")
    assert sorted(await store.participants(room)) == ["alice", "bob", "carol"]
    assert await store.is_participant(room, "carol")


async def test_add_participant_to_a_missing_room_raises(store: SqlStore) -> None:
    """add_participant on an unknown room raises RoomNotFound."""
    with pytest.raises(RoomNotFound):
        await store.add_participant("nope", "alice")


async def test_remove_participant(store: SqlStore, room: str) -> None:
    """Removing returns True once, then False; the user is no longer a participant."""
    assert await store.remove_participant(room, "bob") is True
    assert not await store.is_participant(room, "bob")
    assert await store.remove_participant(room, "bob") is False
    assert await store.participants(room) == ["alice"]


async def test_remove_participant_from_a_missing_room_raises(store: SqlStore) -> None:
    """remove_participant on an unknown room raises RoomNotFound."""
    with pytest.raises(RoomNotFound):
        await store.remove_participant("nope", "alice")


async def test_save_message_returns_what_is_stored(store: SqlStore, room: str) -> None:
    """The returned message has the SPEC fields and equals the one listed afterwards."""
    saved = await store.save_message(room, "alice", "hello")
    assert (saved.chat_room, saved.sender, saved.message, saved.message_type) == (
        room,
        "alice",
        "hello",
        "text",
    )
    assert saved.video_call_data is None
    assert saved.created_by == saved.updated_by == "alice"
    assert saved.timestamp == saved.created_at == saved.updated_at
    assert saved.timestamp.tzinfo is UTC and saved.timestamp.microsecond % 1000 == 0
    page = await store.list_messages(room, 10, None)
    assert page.items == [saved]
    assert page.next_cursor is None
    assert page.items[0].to_wire() == saved.to_wire()


async def test_save_message_to_a_missing_room_raises(store: SqlStore) -> None:
    """A message for an unknown room raises RoomNotFound and is not stored."""
    with pytest.raises(RoomNotFound):
        await store.save_message("nope", "alice", "hello")
    assert (await store.list_messages("nope", 10, None)).items == []


async def test_save_message_refuses_nul(store: SqlStore, room: str) -> None:
    """Text with a NUL character is refused on every backend (PostgreSQL cannot store it)."""
    with pytest.raises(ValueError, match="NUL"):
        await store.save_message(room, "alice", "a\x00b")


async def test_saved_message_survives_a_restart(url: str) -> None:
    """A message is in the file once save_message returns: a new engine reads it back."""
    first = await SqlStore.open(url)
    try:
        await first.create_room("r1", ["alice"])
        saved = await first.save_message("r1", "alice", "durable")
    finally:
        await first.close()
    second = await SqlStore.open(url)
    try:
        assert (await second.list_messages("r1", 10, None)).items == [saved]
    finally:
        await second.close()


async def test_sqlite_pragmas_are_set_on_every_connection(store: SqlStore) -> None:
    """WAL, synchronous=FULL, foreign keys and the busy timeout are on."""
    async with store.engine.connect() as conn:
        values = {
            name: (await conn.execute(text(f"PRAGMA {name}"))).scalar_one()
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        }
    assert values == {
        "journal_mode": "wal",
        "synchronous": 2,
        "foreign_keys": 1,
        "busy_timeout": 5000,
    }


async def test_paging_lists_every_message_once_newest_first(
    store: SqlStore, room: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """250 messages with one timestamp, 7 a page: each exactly once, newest first, then None."""
    monkeypatch.setattr("core.store.sql.now", lambda: FIXED)
    saved = [(await store.save_message(room, "alice", f"m{i}")).id for i in range(250)]
    await store.create_room("other", ["alice"])
    await store.save_message("other", "alice", "elsewhere")

    seen: list[str] = []
    before: str | None = None
    for _ in range(100):
        page = await store.list_messages(room, 7, before)
        assert 0 < len(page.items) <= 7
        assert all(isinstance(m, ChatMessage) and m.timestamp == FIXED for m in page.items)
        seen += [m.id for m in page.items]
        before = page.next_cursor
        if before is None:
            break
    assert seen == saved[::-1]


async def test_last_full_page_has_no_cursor(store: SqlStore, room: str) -> None:
    """When the rows end exactly at a page boundary, that page's next_cursor is None."""
    for i in range(14):
        await store.save_message(room, "alice", f"m{i}")
    first = await store.list_messages(room, 7, None)
    assert first.next_cursor is not None
    second = await store.list_messages(room, 7, first.next_cursor)
    assert [m.message for m in second.items] == [f"m{i}" for i in range(6, -1, -1)]
    assert second.next_cursor is None


@pytest.mark.parametrize(
    "cursor",
    ["", "!!!", "not-a-cursor", encode_cursor("n", 5), "bS4wMQ", "bS4tMQ", "bS4"],
    ids=["empty", "symbols", "garbage", "other-list", "leading-zero", "negative", "no-seq"],
)
async def test_bad_cursor_raises_value_error(store: SqlStore, room: str, cursor: str) -> None:
    """A cursor that is not a nextCursor of this list raises ValueError, saying what to pass."""
    with pytest.raises(ValueError, match="nextCursor"):
        await store.list_messages(room, 7, cursor)


async def test_limit_below_one_raises_value_error(store: SqlStore, room: str) -> None:
    """A page of 0 items is refused."""
    with pytest.raises(ValueError, match="limit"):
        await store.list_messages(room, 0, None)
    with pytest.raises(ValueError, match="limit"):
        await store.list_notifications("alice", 0, None)


async def test_notifications_are_stored_and_paged_per_user(store: SqlStore) -> None:
    """Notifications come back newest first, per user, with the wire shape of notification.new."""
    made = [
        await store.create_notification(
            "alice", "appointment", f"t{i}", "body", "appointment", f"a{i}"
        )
        for i in range(5)
    ]
    await store.create_notification("bob", "system", "hi", "body")
    first = await store.list_notifications("alice", 3, None)
    assert first.items == made[:1:-1] and first.next_cursor is not None
    second = await store.list_notifications("alice", 3, first.next_cursor)
    assert second.items == made[1::-1] and second.next_cursor is None
    assert all(isinstance(n, Notification) for n in first.items + second.items)
    assert set(made[0].to_wire()) == {
        "id", "type", "title", "message", "relatedEntityType", "relatedEntity", "createdAt"
    }  # fmt: skip
    with pytest.raises(ValueError, match="nextCursor"):
        await store.list_notifications("alice", 3, encode_cursor("m", 3))


async def test_locked_database_raises_store_unavailable(url: str) -> None:
    """A write blocked past busy_timeout raises StoreUnavailable; nothing is stored."""
    store = await SqlStore.open(url, busy_timeout=0.2)
    try:
        await store.create_room("r1", ["alice"])
        path = async_url(url).database
        assert path is not None
        locker = sqlite3.connect(path, isolation_level=None)
        try:
            locker.execute("BEGIN EXCLUSIVE")
            with pytest.raises(StoreUnavailable, match="save_message") as caught:
                await store.save_message("r1", "alice", "secret text")
            assert "secret" not in str(caught.value)
            locker.execute("ROLLBACK")
        finally:
            locker.close()
        assert (await store.list_messages("r1", 10, None)).items == []
        await store.save_message("r1", "alice", "after")
    finally:
        await store.close()


async def test_unreachable_postgres_raises_store_unavailable() -> None:
    """A PostgreSQL URL nobody listens on raises StoreUnavailable, without the password."""
    target = "postgresql://wsgen:hunter2@127.0.0.1:1/wsgen"
    with pytest.raises(StoreUnavailable) as caught:
        await SqlStore.open(target, connect_timeout=2)
    assert "hunter2" not in str(caught.value)
    down = SqlStore(create_engine(target, connect_timeout=2))
    try:
        with pytest.raises(StoreUnavailable, match="ping"):
            await down.ping()
    finally:
        await down.close()


async def test_ping_answers_on_a_working_store(store: SqlStore) -> None:
    """ping() returns when the database answers."""
    await store.ping()


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("sqlite:///x.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite"),
        ("postgresql://u:p@h/db", "postgresql+asyncpg"),
        ("postgres://u:p@h/db", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u:p@h/db", "postgresql+asyncpg"),
    ],
)
def test_urls_get_their_async_driver(given: str, driver: str) -> None:
    """Plain SQLite and PostgreSQL URLs switch to aiosqlite and asyncpg."""
    assert async_url(given).drivername == driver


@pytest.mark.parametrize("given", ["mysql://u:pw1@h/db", "postgresql+psycopg2://u:pw1@h/db", "::"])
def test_unsupported_urls_raise_config_error(given: str) -> None:
    """Another database, a sync driver or garbage is a ConfigError that hides the password."""
    with pytest.raises(ConfigError, match="WSGEN_DATABASE_URL") as caught:
        async_url(given)
    assert "pw1" not in str(caught.value)


async def test_open_store_returns_a_working_store(url: str) -> None:
    """open_store() opens the SQL store for a URL."""
    store = await open_store(url)
    try:
        assert not await store.room_exists("r1")
    finally:
        await store.close()


async def test_no_auto_upgrade_on_a_fresh_database_raises_config_error(url: str) -> None:
    """Without auto-upgrade, an unmigrated schema is refused, naming the command to run."""
    with pytest.raises(ConfigError, match="wsgen db upgrade"):
        await SqlStore.open(url, auto_upgrade=False)
    await upgrade_database(url)
    store = await SqlStore.open(url, auto_upgrade=False)
    await store.close()


def test_db_upgrade_command_migrates_to_head(url: str) -> None:
    """`wsgen db upgrade` brings a fresh file to head, and again is a no-op."""
    cli = typer.Typer()
    cli.add_typer(db.app, name="db")
    env = {"WSGEN_DATABASE_URL": url}
    for _ in range(2):
        result = CliRunner().invoke(cli, ["db", "upgrade"], env=env)
        assert result.exit_code == 0, result.output
        assert result.output == f"database at revision {head_revision()} (head)\n"
    assert asyncio.run(is_current(url))
    assert asyncio.run(current_revision(url)) == "0001"


def test_db_upgrade_command_reports_a_bad_url(tmp_path: Path) -> None:
    """A bad WSGEN_DATABASE_URL exits 1 with one line naming the setting."""
    cli = typer.Typer()
    cli.add_typer(db.app, name="db")
    result = CliRunner().invoke(cli, ["db", "upgrade"], env={"WSGEN_DATABASE_URL": "mysql://h/db"})
    assert result.exit_code == 1
    assert result.output.startswith("error: WSGEN_DATABASE_URL: unsupported database")
    assert result.output.count("\n") == 1


async def test_concurrent_upgrades_of_one_file_both_succeed(tmp_path: Path) -> None:
    """Two processes' worth of upgrades racing on a fresh file both end at head.

    A hundred fresh files: the two connections switching a new file to WAL at once
    made one of them fail with "database is locked" (about one race in four in a
    loop like this one; without the retry this test failed within a second)."""
    for attempt in range(100):
        url = f"sqlite:///{tmp_path / str(attempt) / 'chat.db'}"
        revisions = await asyncio.gather(upgrade_database(url), upgrade_database(url))
        assert revisions == ["0001", "0001"]


async def test_migrations_create_exactly_the_schema(url: str) -> None:
    """After upgrading, Alembic finds no difference between the database and schema.metadata."""

    def differences(conn: Connection) -> list[object]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    await upgrade_database(url)
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(differences) == []
    finally:
        await engine.dispose()


async def test_downgrade_to_base_removes_every_table(url: str) -> None:
    """The initial migration's downgrade leaves only Alembic's version table."""

    def downgrade_and_list(conn: Connection) -> list[str]:
        command.downgrade(alembic_config(connection=conn), "base")
        return inspect(conn).get_table_names()

    await upgrade_database(url)
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            assert await conn.run_sync(downgrade_and_list) == ["alembic_version"]
    finally:
        await engine.dispose()


async def test_concurrent_saves_share_commits_and_keep_their_order(
    store: SqlStore, room: str
) -> None:
    """200 concurrent saves are all stored, in the order they were made (group commit)."""
    saved = await asyncio.gather(*(store.save_message(room, "alice", f"m{i}") for i in range(200)))
    page = await store.list_messages(room, 200, None)
    assert [m.id for m in reversed(page.items)] == [m.id for m in saved]


async def test_a_rejected_row_does_not_fail_the_rest_of_its_batch(
    store: SqlStore, room: str
) -> None:
    """A save to a missing room raises RoomNotFound; the saves batched with it succeed."""
    results = await asyncio.gather(
        store.save_message(room, "alice", "before"),
        store.save_message("no-such-room", "alice", "lost"),
        store.save_message(room, "alice", "after"),
        return_exceptions=True,
    )
    assert isinstance(results[1], RoomNotFound)
    page = await store.list_messages(room, 10, None)
    assert [m.message for m in reversed(page.items)] == ["before", "after"]
