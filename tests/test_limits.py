"""Per-connection limits and their codes against a real server (SPEC §3, §5, §10).

Rate (`rate_limited`, then 1008 for a flooder), frame size (1009), chat text length,
and dead peers (protocol pings). The connections-per-user limit (4409) is in
test_user_route.py, allowed origins (403) in test_auth.py, the slow consumer (1013) in
test_slow_consumer.py.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from typing import Any

import orjson
import websockets

from core import metrics
from core.close_codes import CloseCode
from core.limits import RateLimiter
from core.settings import Settings, rate_burst
from core.testing import Client, RunningServer
from tests.conftest import LogCapture, create_room, project_server, room_members, service_client

ROOM_ROUTE = "/ws/comms/chat-rooms/:room"


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def frames_until_close(client: Client) -> tuple[list[dict[str, Any]], int | None]:
    """Every frame the server sends until it closes, and its close code."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(5):
        try:
            while True:
                frames.append(orjson.loads(await client.ws.recv()))
        except websockets.ConnectionClosed as closed:
            return frames, closed.rcvd.code if closed.rcvd is not None else None


async def room_of(server: RunningServer, *users: str) -> str:
    async with service_client(server) as api:
        return await create_room(api, *users)


# -- the bucket, with a clock of our own ------------------------------------------------------


def test_the_bucket_allows_a_burst_then_the_rate() -> None:
    """A full burst passes at once, the next is refused, and tokens come back at the rate."""
    limiter = RateLimiter(rate=10, burst=20, flood_drops=100, flood_window=10, now=0.0)
    assert all(limiter.allow(0.0) for _ in range(20))
    assert not limiter.allow(0.0)
    assert not limiter.allow(0.05)  # half a token
    assert limiter.allow(0.1)  # one token after 1/rate seconds
    assert not limiter.allow(0.1)
    assert sum(limiter.allow(100.0) for _ in range(30)) == 20  # refill stops at the burst


def test_flooding_counts_drops_within_a_window() -> None:
    """`flood_drops` drops within `flood_window` seconds mean flooding; older drops expire."""
    limiter = RateLimiter(rate=1, burst=1, flood_drops=3, flood_window=10, now=0.0)
    assert not limiter.flooding(0.0)
    assert not limiter.flooding(5.0)
    assert not limiter.flooding(10.5)  # the window of the first drop is over: a new one
    assert not limiter.flooding(11.0)
    assert limiter.flooding(12.0)


def test_the_defaults_are_the_spec_s() -> None:
    """RATE_LIMIT is 20 messages per second with a burst of twice that (SPEC §10)."""
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert defaults.rate_limit == 20
    assert rate_burst(defaults) == 40
    assert rate_burst(defaults.model_copy(update={"rate_limit_burst": 7})) == 7
    assert RateLimiter.from_settings(defaults.model_copy(update={"rate_limit": 0}), 0.0) is None


# -- against a real server ------------------------------------------------------------------


async def test_messages_over_the_rate_are_dropped_and_answered_rate_limited(
    settings: Settings,
) -> None:
    """Past the burst a message is dropped (not stored, not relayed) and answered `rate_limited`."""
    # The error carries the message's ref; the connection stays open; others are unaffected.
    # One token per 10 s: the burst of 5 cannot refill while the test sends.
    async with project_server(settings, rate_limit=0.1, rate_limit_burst=5) as server:
        room = await room_of(server, "alice", "bob")
        dropped = sample("wsgen_messages_received_total", route=ROOM_ROUTE, event="dropped")
        answered = sample("wsgen_errors_total", phase="protocol", code="rate_limited")
        async with room_members(server, room, "alice", "bob") as (alice, bob):
            for i in range(5):
                await alice.send("ping", ref=i)
            await alice.send("chat.message", {"text": "over the limit"}, ref="c")
            await alice.ws.send("not even json")
            for i in range(5):
                await alice.expect("pong")
                assert await alice.expect("ack") == {"ref": i}
            error = await alice.expect("error")
            assert error["code"] == "rate_limited" and error["ref"] == "c"
            assert "per second" in error["message"]
            error = await alice.expect("error")
            assert error["code"] == "rate_limited" and "ref" not in error
            await bob.assert_quiet()  # bob has a bucket of his own; nothing was relayed
            await alice.send("ping", ref="still-open")
            assert (await alice.expect("error"))["ref"] == "still-open"
        assert (await server.services.store.list_messages(room, 10, None)).items == []
        assert sample("wsgen_messages_received_total", route=ROOM_ROUTE, event="dropped") == (
            dropped + 3
        )
        assert sample("wsgen_errors_total", phase="protocol", code="rate_limited") == answered + 3


async def test_a_connection_that_keeps_flooding_is_closed_1008(
    settings: Settings, logs: LogCapture
) -> None:
    """The `flood_drops`-th dropped message closes the sender with 1008; the room goes on."""
    # The close is counted and logged as a warning, not an error.
    before = sample("wsgen_limit_closes_total", reason="flood")
    async with project_server(
        settings, rate_limit=0.1, rate_limit_burst=2, flood_drops=10
    ) as server:
        room = await room_of(server, "alice", "bob")
        async with room_members(server, room, "alice", "bob") as (alice, bob):
            for i in range(12):  # 2 pass, 10 are dropped: the 10th drop closes
                await alice.send("ping", ref=i)
            frames, code = await frames_until_close(alice)
            assert code == CloseCode.POLICY_VIOLATION
            assert [f["event"] for f in frames] == ["pong", "ack"] * 2 + ["error"] * 9
            assert {f["payload"]["code"] for f in frames[4:]} == {"rate_limited"}
            assert (await bob.expect("user.left"))["userId"] == "alice"
            await bob.assert_quiet()
    assert sample("wsgen_limit_closes_total", reason="flood") == before + 1
    assert logs.records("connection closed for flooding", level="warning")
    assert not [r for r in logs.lines if r.get("level") == "error"]


async def test_rate_limit_zero_turns_the_limit_off(settings: Settings) -> None:
    """With WSGEN_RATE_LIMIT=0, a burst far over the default is served in full."""
    async with (
        project_server(settings, rate_limit=0) as server,
        room_members(server, await room_of(server, "alice"), "alice") as (alice,),
    ):
        for i in range(150):
            await alice.send("ping", ref=i)
        for i in range(150):
            await alice.expect("pong")
            assert await alice.expect("ack") == {"ref": i}


async def test_the_frame_size_limit_is_the_max_message_bytes_setting(settings: Settings) -> None:
    """With MAX_MESSAGE_BYTES=1024, a frame of 1000 bytes is handled, one of 1100 closes 1009."""
    before = sample("wsgen_limit_closes_total", reason="too_big")
    async with project_server(settings, max_message_bytes=1024) as server:
        room = await room_of(server, "alice", "bob")
        async with room_members(server, room, "alice", "bob") as (alice, bob):
            fits = orjson.dumps({"type": "chat.typing", "data": {"pad": "x" * 900, "isTyping": 1}})
            assert len(fits) < 1024
            await alice.ws.send(fits.decode())
            assert (await alice.expect("error"))["code"] == "invalid_payload"
            await alice.ws.send("y" * 1100)
            assert await alice.closed_with() == CloseCode.MESSAGE_TOO_BIG
            assert (await bob.expect("user.left"))["userId"] == "alice"
    assert sample("wsgen_limit_closes_total", reason="too_big") == before + 1


async def test_the_chat_text_length_is_the_chat_text_max_setting(settings: Settings) -> None:
    """With CHAT_TEXT_MAX=10, ten characters after trimming are stored, eleven are refused."""
    async with project_server(settings, chat_text_max=10) as server:
        room = await room_of(server, "alice", "bob")
        async with room_members(server, room, "alice", "bob") as (alice, bob):
            ack = await alice.request("chat.message", {"text": "  0123456789  "}, ref="ok")
            assert ack["payload"]["message"]["message"] == "0123456789"
            assert (await bob.expect("chat.message"))["message"] == "0123456789"
            reply = await alice.request("chat.message", {"text": "0123456789a"}, ref="long")
            assert reply["payload"]["code"] == "invalid_payload"
            assert reply["payload"]["message"] == "text: must be 1 to 10 characters after trimming"
            await bob.assert_quiet()


# -- dead peers ---------------------------------------------------------------------------------


async def open_silent_peer(
    server: RunningServer, path: str, user: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw TCP client that completes the WebSocket handshake, then never reads nor answers."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {server.token(user)}\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def test_a_peer_that_stops_answering_pings_is_reaped(settings: Settings) -> None:
    """A silent half-open peer is dropped within ping interval + timeout, and its presence goes."""
    # A raw TCP client completes the handshake, then never reads nor answers a ping; a peer
    # that answers pings (the client library does) stays connected.
    interval, timeout = 0.5, 1.0  # alice (same event loop) has 1 s to answer each ping
    before = sample("wsgen_limit_closes_total", reason="ping_timeout")
    async with project_server(settings, ping_interval=interval, ping_timeout=timeout) as server:
        room = await room_of(server, "alice", "ghost")
        async with room_members(server, room, "alice") as (alice,):
            reader, writer = await open_silent_peer(server, f"/ws/comms/chat-rooms/{room}", "ghost")
            try:
                assert (await alice.expect("user.joined"))["userId"] == "ghost"
                joined = time.monotonic()
                left = await alice.expect("user.left", timeout=interval + timeout + 5)
                assert left["userId"] == "ghost"
                # Generous: the bound is interval + timeout; this only catches "never".
                assert time.monotonic() - joined < interval + timeout + 2
                # The server dropped the TCP connection: reading ends (EOF or reset).
                try:
                    async with asyncio.timeout(5):
                        while await reader.read(65536):
                            pass
                except ConnectionResetError:
                    pass
                # alice answers pings (the client library does): still served, several
                # ping intervals later.
                await asyncio.sleep(3 * interval)
                await alice.assert_quiet()
            finally:
                writer.close()
    assert sample("wsgen_limit_closes_total", reason="ping_timeout") == before + 1
