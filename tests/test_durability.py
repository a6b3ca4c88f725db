"""Stored before broadcast: what a sender saw acknowledged survives a restart; nothing
unstored is ever delivered (SPEC §6, §8)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx

from core.app import create_app
from core.server import load_registry
from core.settings import Settings
from core.store import open_store
from core.testing import RunningServer, connect, serve
from tests.conftest import ROOT, create_room

ROOM = "/ws/comms/chat-rooms/{}"


async def test_an_acknowledged_message_survives_a_restart(settings: Settings) -> None:
    """A message acked by one server is served by a new server on the same SQLite file."""
    registry = load_registry(ROOT)
    async with serve(create_app(registry.load(), settings), settings) as first:
        async with httpx.AsyncClient(
            base_url=first.http_url(""),
            headers={"Authorization": f"Bearer {first.services.api_key}"},
        ) as api:
            room = await create_room(api, "alice", "bob")
        async with connect(first, ROOM.format(room), "alice") as alice:
            await alice.expect("connected")
            ack = await alice.request("chat.message", {"text": "still here after restart"})
            stored = ack["payload"]["message"]

    async with serve(create_app(registry.load(), settings), settings) as second:
        page = await second.services.store.list_messages(room, 10, None)
        assert [m.to_wire() for m in page.items] == [stored]
        async with connect(second, ROOM.format(room), "bob") as bob:  # the room survived too
            await bob.expect("connected")


async def test_store_failure_answers_unavailable_and_nobody_receives(
    settings: Settings, tmp_path: Path
) -> None:
    """With the database locked, the sender gets `unavailable` and no member gets the message."""
    store = await open_store(settings.database_url, busy_timeout=0.2)
    app = create_app(load_registry(ROOT).load(), settings, store=store)
    try:
        async with serve(app, settings) as server:
            room = (await store.create_room(None, ["alice", "bob"])).id
            await check_unavailable(server, room, tmp_path / "wsgen.db")
    finally:
        await store.close()


async def check_unavailable(server: RunningServer, room: str, database: Path) -> None:
    async with (
        connect(server, ROOM.format(room), "alice") as alice,
        connect(server, ROOM.format(room), "bob") as bob,
    ):
        await alice.expect("connected")
        await bob.expect("connected")
        await alice.expect("user.joined")
        locker = sqlite3.connect(database, isolation_level=None)
        try:
            locker.execute("BEGIN EXCLUSIVE")
            reply = await alice.request("chat.message", {"text": "lost?"}, ref="u1")
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert reply["event"] == "error"
        assert reply["payload"]["code"] == "unavailable"
        assert reply["payload"]["ref"] == "u1"
        await bob.assert_quiet()  # nobody received the unstored message
        assert (await server.services.store.list_messages(room, 10, None)).items == []
        # The store recovers once the lock is gone.
        assert (await alice.request("chat.message", {"text": "now stored"}))["event"] == "ack"
        assert (await bob.expect("chat.message"))["message"] == "now stored"
