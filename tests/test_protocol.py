"""The contract of wsgen's uvicorn protocol class (core/protocol.py) and its ASGI fallback.

uvicorn is pinned exactly because the protocol class builds on its internals; these
tests are what an upgrade must keep passing.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets

from core.close_codes import CloseCode
from core.protocol import WsgenProtocol
from core.server import app_from_registry
from core.settings import Settings
from core.testing import Client, RunningServer, connect, serve
from tests.conftest import ROOT, LogCapture, create_room, room_members, room_path

OFFER = {"type": "offer", "sdp": "x" * 50_000}  # a large signal: relayed, never stored


@pytest.fixture(params=["wsgen", "asgi-fallback"])
async def any_server(
    request: pytest.FixtureRequest, settings: Settings
) -> AsyncIterator[RunningServer]:
    """The project's routes on wsgen's protocol class, and on uvicorn's own (plain ASGI sends).

    No rate limit: these bursts test the send path (test_limits.py tests the limit).
    """
    overrides = {} if request.param == "wsgen" else {"ws": "websockets-sansio"}
    unlimited = settings.model_copy(update={"rate_limit": 0})
    async with serve(app_from_registry(ROOT, unlimited), unlimited, **overrides) as running:
        yield running


async def api_for(server: RunningServer) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {server.services.api_key}"}
    return httpx.AsyncClient(base_url=server.http_url(""), headers=headers)


async def test_frames_arrive_in_order_on_both_send_paths(any_server: RunningServer) -> None:
    """A burst of broadcasts reaches each member complete and in order, acks included."""
    async with await api_for(any_server) as api:
        room = await create_room(api, "alice", "bob")
    async with room_members(any_server, room, "alice", "bob") as (alice, bob):
        for i in range(200):
            await alice.send("chat.typing", {"isTyping": i % 2 == 0}, ref=i)
        for i in range(200):
            assert await alice.expect("ack") == {"ref": i}
            assert (await bob.expect("chat.typing"))["isTyping"] is (i % 2 == 0)
        await alice.assert_quiet()
        await bob.assert_quiet()


async def test_close_codes_on_both_send_paths(any_server: RunningServer) -> None:
    """A binary frame closes with 1003 on either path, and the connection is forgotten."""
    async with await api_for(any_server) as api:
        room = await create_room(api, "alice", "bob")
    async with room_members(any_server, room, "alice", "bob") as (alice, bob):
        await bob.ws.send(b"\x00binary")
        assert await bob.closed_with() == CloseCode.UNSUPPORTED_DATA
        assert (await alice.expect("user.left"))["userId"] == "bob"


async def next_skipping_left(client: Client, name: str, left: set[str]) -> dict[str, object]:
    """The next frame that is not the frozen member's `user.left` (which adds ``name`` to left)."""
    frame = await client.recv()
    if frame["event"] == "user.left":
        assert frame["payload"]["userId"] == "frozen"
        left.add(name)
        frame = await client.recv()
    return frame


@pytest.fixture
async def small_queue_server(settings: Settings) -> AsyncIterator[RunningServer]:
    small = settings.model_copy(update={"send_queue_max": 16, "rate_limit": 0})
    async with serve(app_from_registry(ROOT, small), small) as running:
        yield running


async def test_a_reader_that_stops_is_closed_1013_without_slowing_others(
    small_queue_server: RunningServer,
) -> None:
    """A member that stops reading is closed with 1013 once its queue passes the bound, while
    the sender keeps getting acks and another member keeps receiving every message."""
    server = small_queue_server
    async with await api_for(server) as api:
        room = await create_room(api, "alice", "carol", "frozen")
    async with room_members(server, room, "alice", "carol") as (alice, carol):
        # max_queue=1: the client library stops reading the socket after one unread frame.
        async with websockets.connect(
            server.ws_url(room_path(room)),
            additional_headers={"Authorization": f"Bearer {server.token('frozen')}"},
            max_queue=1,
        ) as frozen_ws:
            frozen = Client(frozen_ws)
            assert (await alice.expect("user.joined"))["userId"] == "frozen"
            assert (await carol.expect("user.joined"))["userId"] == "frozen"
            left: set[str] = set()  # who has heard that the frozen member left
            for i in range(400):
                await alice.send("video.offer", OFFER, ref=i)
                ack = await next_skipping_left(alice, "alice", left)
                assert ack == {"event": "ack", "payload": {"ref": i}}
                assert (await next_skipping_left(carol, "carol", left))["event"] == "video.offer"
                if "carol" in left:
                    break
            assert "carol" in left, "the stalled reader was never closed"
            if "alice" not in left:
                assert (await alice.expect("user.left"))["userId"] == "frozen"
            assert await frozen.closed_with(timeout=8) == CloseCode.TRY_AGAIN_LATER
        await carol.assert_quiet()
        await alice.assert_quiet()


async def test_shutdown_closes_every_connection_with_1001(
    settings: Settings, logs: LogCapture
) -> None:
    """On shutdown each open connection is closed with 1001 (going away), not 1012."""
    async with serve(app_from_registry(ROOT, settings), settings) as server:
        async with await api_for(server) as api:
            room = await create_room(api, "alice", "bob")
        async with (
            connect(server, room_path(room), "alice") as alice,
            connect(server, "/ws/user", "bob") as bob,
        ):
            await alice.expect("connected")
            await bob.expect("connected")
            await server.stop()
            assert await alice.closed_with() == CloseCode.GOING_AWAY
            assert await bob.closed_with() == CloseCode.GOING_AWAY
    assert not [r for r in logs.lines if r.get("level") == "error"]


async def test_a_refused_handshake_logs_no_error(server: RunningServer, logs: LogCapture) -> None:
    """A denial response is not also reported as an incomplete handshake at ERROR."""
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(server.ws_url("/ws/user")):
            pass
    async with connect(server, "/ws/user", "alice") as alice:  # a later request is served
        await alice.expect("connected")
    assert not [r for r in logs.lines if r.get("level") == "error"], logs.lines


async def test_query_strings_never_reach_the_log(settings: Settings, logs: LogCapture) -> None:
    """With query tokens on, the token in the URL is not in any log line."""
    with_query = settings.model_copy(update={"query_token": True})
    async with serve(app_from_registry(ROOT, with_query), with_query) as server:
        token = server.token("alice")
        async with websockets.connect(server.ws_url(f"/ws/user?token={token}")) as ws:
            assert "connected" in await ws.recv()
        with pytest.raises(websockets.InvalidStatus):
            async with websockets.connect(server.ws_url("/ws/user?token=not-a-jwt-secret-ish")):
                pass
    text = str(logs.lines)
    assert token not in text
    assert "not-a-jwt-secret-ish" not in text
    assert any("/ws/user" in str(r) for r in logs.lines)  # the path itself is logged


@pytest.mark.parametrize("ending", ["close", "abort"])
async def test_closed_connections_are_freed_without_the_garbage_collector(
    server: RunningServer, ending: str
) -> None:
    """A closed connection's objects hold no reference cycle: reference counting frees
    them as it closes (with a close frame, or the TCP connection dropped), and closed
    connections never wait for a collection pass over everything they held."""
    async with await api_for(server) as api:
        room = await create_room(api, "alice", "bob")
    gc.collect()
    gc.disable()
    try:
        async with room_members(server, room, "alice", "bob") as (alice, bob):
            await alice.send("chat.message", {"text": "hi"}, ref=1)
            await alice.expect("ack")
            await bob.expect("chat.message")
            protocols = [
                p for p in server.uvicorn.server_state.connections if isinstance(p, WsgenProtocol)
            ]
            refs = [weakref.ref(o) for p in protocols for o in (p, p.conn)]
            del protocols
            if ending == "abort":
                alice.ws.transport.abort()
                bob.ws.transport.abort()
        assert len(refs) == 4  # each protocol, and websockets' side of it
        async with asyncio.timeout(5):
            while any(ref() is not None for ref in refs):
                await asyncio.sleep(0.01)
    finally:
        gc.enable()
