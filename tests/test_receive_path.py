"""wsgen's receive path (core/protocol.py), driven with hand-made frames on a raw socket.

The protocol class cuts frames itself and gives websockets' parser every frame it
does not handle whole, so these tests feed what a WebSocket library would never
produce: frames split at every byte, many frames in one write, control frames
between messages, fragments, bad UTF-8, reserved bits, unmasked and oversized frames.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import struct
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from core.close_codes import CloseCode
from core.endpoint import IDLE_RELEASE
from core.frames import OutFrame
from core.protocol import WsgenProtocol
from core.testing import FakeTransport, RunningServer
from tests.conftest import project_server

TIMEOUT = 5.0
TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA
PROTOCOL_ERROR, INVALID_DATA = 1002, 1007  # sent by websockets' parser, not by wsgen


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True, rsv: int = 0
) -> bytes:
    """A client frame (masked unless ``mask=False``), as RFC 6455 §5.2 lays it out."""
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    length = len(payload)
    masked = 0x80 if mask else 0
    if length < 126:
        head += bytes([masked | length])
    elif length < 1 << 16:
        head += bytes([masked | 126]) + struct.pack("!H", length)
    else:
        head += bytes([masked | 127]) + struct.pack("!Q", length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def text(message: dict[str, Any]) -> bytes:
    return frame(TEXT, json.dumps(message).encode())


class RawClient:
    """A WebSocket client with no library in between: bytes in, frames out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def write(self, data: bytes, *, chunk: int | None = None) -> None:
        step = chunk or len(data)
        for start in range(0, len(data), step):
            self.writer.write(data[start : start + step])
            await self.writer.drain()

    async def read_frame(self) -> tuple[int, bytes]:
        async with asyncio.timeout(TIMEOUT):
            first, second = await self.reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
            return first & 0x0F, await self.reader.readexactly(length)

    async def next_event(self) -> dict[str, Any]:
        opcode, payload = await self.read_frame()
        assert opcode == TEXT, (opcode, payload)
        return json.loads(payload)  # type: ignore[no-any-return]

    async def close_code(self) -> int:
        """Read until the server's close frame; its status code."""
        while True:
            opcode, payload = await self.read_frame()
            if opcode == CLOSE:
                return int.from_bytes(payload[:2])

    async def pongs_and_acks(self, count: int) -> list[tuple[str, Any]]:
        """The next ``count`` replies to pings sent with refs, as (event, ref) pairs."""
        replies = []
        for _ in range(count):
            event = await self.next_event()
            replies.append((event["event"], event["payload"].get("ref")))
        return replies


@pytest.fixture
async def server(settings: Any) -> AsyncIterator[RunningServer]:
    async with project_server(settings, rate_limit=0) as running:
        yield running


@pytest.fixture
async def raw(server: RunningServer) -> AsyncIterator[RawClient]:
    async with open_raw(server) as client:
        yield client


def upgrade_request(server: RunningServer, path: str, user: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {server.host}:{server.port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Bearer {server.token(user)}\r\n\r\n"
    ).encode()


async def raw_connection(server: RunningServer, path: str, user: str) -> RawClient:
    """A raw client past the 101 (the caller closes its writer)."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(upgrade_request(server, path, user))
    async with asyncio.timeout(TIMEOUT):
        status = await reader.readuntil(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 101"), status
    return RawClient(reader, writer)


@contextlib.asynccontextmanager
async def open_raw(server: RunningServer) -> AsyncIterator[RawClient]:
    client = await raw_connection(server, "/ws/user", "alice")
    writer = client.writer
    assert (await client.next_event())["event"] == "connected"
    assert fast_path(server) == [True]  # the frames below are cut by wsgen, not websockets
    try:
        yield client
    finally:
        writer.close()


def fast_path(server: RunningServer) -> list[bool]:
    """For each open WebSocket: is wsgen's receive path reading it?"""
    connections = server.uvicorn.server_state.connections
    return [p._fast for p in connections if isinstance(p, WsgenProtocol)]


async def test_the_handshake_is_not_kept(raw: RawClient, server: RunningServer) -> None:
    """After the upgrade the connection holds no request or response; frames still flow."""
    (protocol,) = [
        p for p in server.uvicorn.server_state.connections if isinstance(p, WsgenProtocol)
    ]
    assert protocol.request is None and protocol.response is None
    await raw.write(ping(1))
    assert await raw.pongs_and_acks(2) == replies_to_pings(range(1, 2))


async def test_a_connection_keeps_its_attributes_in_a_shared_key_dict(
    settings: Any,
) -> None:
    """CPython shares one key table among the instance dicts of a class while it has
    fewer than 30 attribute names; past that, every connection's dict is a full one
    (1.5 KiB instead of 0.3). Checked after messages and keepalive pings, which set
    the attributes a connection adds after its handshake."""
    async with (
        project_server(settings, rate_limit=0, ping_interval=0.1, ping_timeout=5) as server,
        open_raw(server) as raw,
    ):
        await raw.write(ping(1))
        assert await raw.pongs_and_acks(2) == replies_to_pings(range(1, 2))
        for _ in range(2):  # two keepalive rounds: the server's ping, our pong
            opcode, payload = await raw.read_frame()
            assert opcode == PING
            await raw.write(frame(PONG, payload))
        await raw.write(ping(2))
        assert await raw.pongs_and_acks(2) == replies_to_pings(range(2, 3))
        (protocol,) = [
            p for p in server.uvicorn.server_state.connections if isinstance(p, WsgenProtocol)
        ]
        assert len(vars(protocol)) < 30
        assert sys.getsizeof(vars(protocol)) < 600, sorted(vars(protocol))


def ping(ref: int) -> bytes:
    return text({"type": "ping", "ref": ref})


def replies_to_pings(refs: range) -> list[tuple[str, Any]]:
    return [pair for ref in refs for pair in (("pong", None), ("ack", ref))]


async def test_frames_split_at_every_byte_are_read(raw: RawClient) -> None:
    await raw.write(ping(1) + ping(2) + ping(3), chunk=1)
    assert await raw.pongs_and_acks(6) == replies_to_pings(range(1, 4))


async def test_many_frames_in_one_write_keep_their_order(raw: RawClient) -> None:
    await raw.write(b"".join(ping(ref) for ref in range(50)))
    assert await raw.pongs_and_acks(100) == replies_to_pings(range(50))


async def test_frames_with_16_bit_lengths(raw: RawClient) -> None:
    """A 300-byte message (a 16-bit length) between two small ones, split mid-header."""
    big = text({"type": "ping", "ref": "x" * 300})
    data = ping(1) + big + ping(2)
    await raw.write(data[: len(ping(1)) + 3])
    await raw.write(data[len(ping(1)) + 3 :])
    assert await raw.pongs_and_acks(6) == [
        ("pong", None),
        ("ack", 1),
        ("pong", None),
        ("ack", "x" * 300),
        ("pong", None),
        ("ack", 2),
    ]


async def test_a_ping_frame_between_messages_is_answered_in_place(raw: RawClient) -> None:
    await raw.write(ping(1) + frame(PING, b"hello") + ping(2))
    seen = [await raw.read_frame() for _ in range(5)]
    assert (PONG, b"hello") in seen
    events = [json.loads(payload) for opcode, payload in seen if opcode == TEXT]
    assert [(e["event"], e["payload"].get("ref")) for e in events] == replies_to_pings(range(1, 3))


async def test_a_fragmented_message_is_assembled(raw: RawClient, server: RunningServer) -> None:
    """A message in three fragments (websockets assembles it), then ordinary frames:
    all answered, in order, and wsgen reads the frames after it again."""
    message = json.dumps({"type": "ping", "ref": 7}).encode()
    fragments = (
        frame(TEXT, message[:5], fin=False)
        + frame(CONT, message[5:12], fin=False)
        + frame(CONT, message[12:])
    )
    await raw.write(ping(6) + fragments + ping(8))
    assert await raw.pongs_and_acks(6) == replies_to_pings(range(6, 9))
    assert fast_path(server) == [True]
    # A whole message while a fragmented one is open is refused, as websockets does.
    await raw.write(frame(TEXT, message[:5], fin=False) + ping(9))
    assert await raw.close_code() == PROTOCOL_ERROR


async def test_a_fragmented_message_can_be_split_anywhere(raw: RawClient) -> None:
    message = json.dumps({"type": "ping", "ref": 7}).encode()
    data = frame(TEXT, message[:5], fin=False) + frame(PING, b"p") + frame(CONT, message[5:])
    await raw.write(data + ping(8), chunk=3)
    seen = [await raw.read_frame() for _ in range(5)]
    assert seen[0] == (PONG, b"p")
    events = [json.loads(payload) for _, payload in seen[1:]]
    assert [(e["event"], e["payload"].get("ref")) for e in events] == replies_to_pings(range(7, 9))


async def test_a_pong_frame_is_ignored(raw: RawClient) -> None:
    await raw.write(frame(PONG, b"unsolicited") + ping(1))
    assert await raw.pongs_and_acks(2) == replies_to_pings(range(1, 2))


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (frame(TEXT, b'{"type": "ping", "x": "\xff\xfe"}'), INVALID_DATA),
        (frame(TEXT, b'{"type": "ping"}', mask=False), PROTOCOL_ERROR),
        (frame(TEXT, b'{"type": "ping"}', rsv=4), PROTOCOL_ERROR),
        (frame(0x3, b"reserved opcode"), PROTOCOL_ERROR),
        (frame(CONT, b"no message to continue"), PROTOCOL_ERROR),
        (frame(BINARY, b"\x00\x01"), CloseCode.UNSUPPORTED_DATA),
    ],
    ids=["bad-utf8", "unmasked", "reserved-bit", "reserved-opcode", "stray-continuation", "binary"],
)
async def test_bad_frames_close_with_their_code(raw: RawClient, bad: bytes, code: int) -> None:
    """Each closed as before the receive path was ours (a protocol error fails the
    connection at once, so the message before it is answered first here)."""
    await raw.write(ping(1))
    assert await raw.pongs_and_acks(2) == replies_to_pings(range(1, 2))
    await raw.write(bad + ping(2))
    assert await raw.close_code() == code


async def test_an_oversized_frame_closes_1009_from_its_header(
    raw: RawClient, server: RunningServer
) -> None:
    """The header alone is enough: the server does not wait for (or buffer) the payload."""
    too_big = server.services.settings.max_message_bytes + 1
    header = bytes([0x81, 0x80 | 127]) + struct.pack("!Q", too_big) + os.urandom(4)
    await raw.write(header)
    assert await raw.close_code() == CloseCode.MESSAGE_TOO_BIG


async def test_a_close_frame_is_echoed(raw: RawClient) -> None:
    await raw.write(ping(1))
    assert await raw.pongs_and_acks(2) == replies_to_pings(range(1, 2))
    await raw.write(frame(CLOSE, struct.pack("!H", 1000) + b"bye"))
    assert await raw.close_code() == CloseCode.NORMAL_CLOSURE


async def test_after_the_server_closes_frames_are_dropped_and_the_close_completes(
    raw: RawClient,
) -> None:
    """Messages still in flight when the server closes (here: 1003 for a binary frame)
    are dropped, reading goes on, and the peer's close reply ends the connection at once
    (not by an abort after the close timeout)."""
    await raw.write(frame(BINARY, b"\x00"))
    assert await raw.close_code() == CloseCode.UNSUPPORTED_DATA
    await raw.write(b"".join(ping(ref) for ref in range(200)))  # past READ_QUEUE_HIGH
    # Give the server time to read those first, so that the close reply comes in a read
    # of its own (correct code passes either way; without the wait a regression could hide).
    await asyncio.sleep(0.2)
    await raw.write(frame(CLOSE, struct.pack("!H", CloseCode.UNSUPPORTED_DATA)))
    async with asyncio.timeout(TIMEOUT):  # the close timeout is 10 s
        assert await raw.reader.read() == b""  # a clean end of stream, not a reset


HANDSHAKE = (
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
"""A handshake request with RFC 6455's example key."""


def loaded_config(app: Any) -> uvicorn.Config:
    """uvicorn's settings for driving the protocol classes by hand (no server)."""
    config = uvicorn.Config(app, ws=WsgenProtocol, log_config=None, lifespan="off")
    config.load()
    return config


def app_accepting_on(accept: asyncio.Event, received: list[Any]) -> Any:
    """An ASGI app that accepts once ``accept`` is set and records the texts it gets."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await accept.wait()
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] != "websocket.disconnect":
            received.append(message.get("text"))

    return app


def requested(app: Any) -> tuple[WsgenProtocol, FakeTransport]:
    """wsgen's protocol driven by hand on a fake transport, sent :data:`HANDSHAKE`."""
    protocol = WsgenProtocol(config=loaded_config(app), server_state=ServerState(), app_state={})
    transport = FakeTransport()
    protocol.connection_made(transport)
    protocol.data_received(HANDSHAKE)
    return protocol, transport


async def settle() -> None:
    """Let the event loop run what the last step scheduled (the app, the pass's write)."""
    for _ in range(10):
        await asyncio.sleep(0)


@pytest.mark.parametrize("peer_frame", ["close", "bad"])
async def test_frames_pending_when_the_peer_closes_go_out_first(peer_frame: str) -> None:
    """A frame waiting for the pass's write goes out before the answer to the peer's close
    frame, or before the close for a frame websockets refuses (reserved opcode: 1002);
    uvloop may read the peer's frame before it runs the write."""
    accept = asyncio.Event()
    accept.set()
    protocol, transport = requested(app_accepting_on(accept, []))
    await settle()
    assert transport.written.startswith(b"HTTP/1.1 101")
    reply = b"\x81\x02{}"
    assert protocol.send_frame(OutFrame(b"{}"))  # pending until the pass's write
    if peer_frame == "close":
        protocol.data_received(frame(CLOSE, (1000).to_bytes(2, "big")))
    else:
        protocol.data_received(frame(0x3, b"x"))
    written = bytes(transport.written)
    assert reply in written, written
    assert written.index(reply) < written.rindex(b"\x88")  # the close frame comes last
    protocol.connection_lost(None)


@pytest.mark.parametrize("before", ["ping", "text"])
async def test_frames_pending_go_out_before_a_pong_and_close_on_websockets_path(
    before: str,
) -> None:
    """Once websockets reads the connection (here: bytes came before the 101), one read
    may hold a ping (or a message) and the close: what was pending goes out before the
    pong and the close reply, which uvicorn writes together."""
    accept = asyncio.Event()
    protocol, transport = requested(app_accepting_on(accept, []))
    first = text({"type": "ping", "ref": 1})
    await asyncio.sleep(0)
    protocol.data_received(first[:3])  # before the 101
    accept.set()
    await settle()
    protocol.data_received(first[3:])
    await settle()
    assert not protocol._fast  # websockets reads this connection
    start = len(transport.written)
    reply = b"\x81\x02{}"
    assert protocol.send_frame(OutFrame(b"{}"))
    peer = frame(PING, b"p") if before == "ping" else text({"type": "x"})
    protocol.data_received(peer + frame(CLOSE, (1000).to_bytes(2, "big")))
    written = bytes(transport.written[start:])
    assert reply in written, written
    assert written.index(reply) < written.rindex(b"\x88"), written  # the close frame last
    protocol.connection_lost(None)


@pytest.mark.parametrize("cut", [1, 2, 6, 8])
async def test_frames_sent_before_the_101_are_read(cut: int) -> None:
    """A client that does not wait for the 101 may have sent part of a frame; websockets'
    parser is then inside that frame, so wsgen must not start cutting frames itself."""
    accept = asyncio.Event()
    received: list[Any] = []
    protocol, transport = requested(app_accepting_on(accept, received))
    first = text({"type": "ping", "ref": 1})
    await asyncio.sleep(0)
    protocol.data_received(first[:cut])  # before the app accepted
    accept.set()
    await settle()
    assert transport.written.startswith(b"HTTP/1.1 101")
    protocol.data_received(first[cut:] + text({"type": "ping", "ref": 2}))
    await settle()
    assert [json.loads(t)["ref"] for t in received] == [1, 2]
    assert not transport.closing
    protocol.connection_lost(None)


async def session_tasks(server: RunningServer) -> int:
    """Tasks uvicorn's shutdown waits for: the connections' session tasks, here."""
    await asyncio.sleep(0)
    return len(server.uvicorn.server_state.tasks)


async def test_an_idle_connection_keeps_no_task(raw: RawClient, server: RunningServer) -> None:
    """After on_connect the app returns (the connection is detached): no task waits for
    a connection that sends nothing; a message starts one, and it ends once idle."""
    assert await session_tasks(server) == 0
    await raw.write(ping(1))
    assert await raw.pongs_and_acks(2) == replies_to_pings(range(1, 2))
    assert await session_tasks(server) == 1  # a busy connection keeps its task
    async with asyncio.timeout(IDLE_RELEASE * 5):
        while await session_tasks(server):
            await asyncio.sleep(0.05)
    await raw.write(ping(2))  # and the connection is served as before
    assert await raw.pongs_and_acks(2) == replies_to_pings(range(2, 3))
