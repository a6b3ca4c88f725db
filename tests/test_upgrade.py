"""wsgen's upgrade path (core/upgrade.py): handshake requests read once, by httptools.

A request every client sends is accepted here with a prebuilt 101; anything else must
take uvicorn's path and get websockets' answer, exactly as without this class.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from uvicorn.protocols.utils import get_local_addr, get_remote_addr
from uvicorn.server import ServerState
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.server import ServerProtocol

from core.protocol import WsgenProtocol
from core.testing import RECEIVE_TIMEOUT, FakeTransport, RunningServer
from core.upgrade import WsgenHttpProtocol, accept_value, local_address, remote_address
from tests.conftest import project_server
from tests.test_receive_path import (
    HANDSHAKE,
    PING,
    TIMEOUT,
    RawClient,
    app_accepting_on,
    frame,
    loaded_config,
    settle,
    text,
)

RFC_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3's example, and its answer:
RFC_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def handshake(key: bytes = RFC_KEY, **extra: bytes) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"host", b"x"),
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-key", key),
        (b"sec-websocket-version", b"13"),
    ]
    return headers + [(name.replace("_", "-").encode(), value) for name, value in extra.items()]


def test_the_accept_value_is_rfc_6455s() -> None:
    assert accept_value(handshake()) == RFC_ACCEPT


def test_a_subprotocol_list_of_tokens_is_accepted() -> None:
    token = b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2ln-_x"
    assert accept_value(handshake(sec_websocket_protocol=b"bearer, " + token)) == RFC_ACCEPT


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(handshake(key=b"not base64!"), id="key-not-base64"),
        pytest.param(handshake(key=base64.b64encode(b"x" * 15)), id="key-not-16-bytes"),
        pytest.param([*handshake(), (b"sec-websocket-key", RFC_KEY)], id="key-twice"),
        pytest.param([h for h in handshake() if h[0] != b"sec-websocket-key"], id="no-key"),
        pytest.param([*handshake()[:4], (b"sec-websocket-version", b"8")], id="version-8"),
        pytest.param(handshake()[:4], id="no-version"),
        pytest.param([*handshake(origin=b"a"), (b"origin", b"b")], id="origin-twice"),
        pytest.param(handshake(sec_websocket_protocol=b"a/b"), id="subprotocol-not-token"),
        pytest.param(handshake(sec_websocket_protocol=b"a,,b"), id="subprotocol-empty"),
        pytest.param(handshake(content_length=b"0"), id="body"),
        pytest.param(handshake(transfer_encoding=b"chunked"), id="chunked-body"),
        pytest.param(handshake(x=b"v" * 9000), id="header-line-too-long"),
        pytest.param(handshake() + [(b"x", b"")] * 130, id="too-many-headers"),
    ],
)
def test_requests_websockets_would_not_take_as_they_are_are_left_to_it(
    headers: list[tuple[bytes, bytes]],
) -> None:
    assert accept_value(headers) is None


# -- over a real server ----------------------------------------------------------


@pytest.fixture
async def server(settings: Any) -> AsyncIterator[RunningServer]:
    async with project_server(settings, rate_limit=0) as running:
        yield running


async def exchange(server: RunningServer, request: bytes) -> tuple[bytes, RawClient]:
    """Send raw bytes; the response head (status line and headers) and the connection."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(request)
    async with asyncio.timeout(TIMEOUT):
        head = await reader.readuntil(b"\r\n\r\n")
    return head, RawClient(reader, writer)


def request_bytes(server: RunningServer, *lines: str, method: str = "GET") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    head = [
        f"{method} /ws/user HTTP/1.1",
        f"Host: {server.host}:{server.port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        f"Authorization: Bearer {server.token('alice')}",
        *lines,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


async def test_the_101_carries_the_accept_value_and_the_date(server: RunningServer) -> None:
    request = request_bytes(server)
    head, client = await exchange(server, request)
    key = next(line for line in request.split(b"\r\n") if line.startswith(b"Sec-WebSocket-Key"))
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 101 Switching Protocols"
    assert b"Sec-WebSocket-Accept: " + accept_value(handshake(key.split(b": ")[1])) in lines
    assert b"Upgrade: websocket" in lines and b"Connection: Upgrade" in lines
    assert any(line.startswith(b"date: ") for line in lines)
    assert (await client.next_event())["event"] == "connected"
    client.writer.close()


async def test_frames_in_the_same_write_as_the_request_are_read(server: RunningServer) -> None:
    """uvicorn drops the bytes that follow an upgrade request in the same read."""
    ping = text({"type": "ping", "ref": 7})
    head, client = await exchange(server, request_bytes(server) + ping)
    assert head.startswith(b"HTTP/1.1 101")
    events = [await client.next_event() for _ in range(3)]
    assert [e["event"] for e in events] == ["connected", "pong", "ack"]
    assert events[2]["payload"]["ref"] == 7
    client.writer.close()


async def test_an_upgrade_after_a_plain_request_on_the_same_connection(
    server: RunningServer,
) -> None:
    """A handshake may follow a plain request on a kept-alive connection, even one that
    asked for another upgrade (whether a request upgrades is worked out per request)."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(
        f"GET /healthz HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
        "Connection: Upgrade\r\nUpgrade: h2c\r\n\r\n".encode()
    )
    async with asyncio.timeout(TIMEOUT):
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
            if line.startswith(b"content-length:")
        )  # fmt: skip
        await reader.readexactly(length)
    assert head.startswith(b"HTTP/1.1 200"), head
    writer.write(request_bytes(server))
    async with asyncio.timeout(TIMEOUT):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    client = RawClient(reader, writer)
    assert (await client.next_event())["event"] == "connected"
    writer.close()


@pytest.mark.parametrize(
    ("lines", "method", "status"),
    [
        pytest.param(("Sec-WebSocket-Version: 13",), "GET", b"400", id="version-twice"),
        pytest.param(("Sec-WebSocket-Protocol: a/b",), "GET", b"400", id="bad-subprotocol"),
        pytest.param((), "POST", b"405", id="post"),
    ],
)
async def test_other_requests_get_websockets_answer(
    server: RunningServer, lines: tuple[str, ...], method: str, status: bytes
) -> None:
    head, client = await exchange(server, request_bytes(server, *lines, method=method))
    assert head.split(b" ")[1] == status, head
    client.writer.close()


async def test_a_subprotocol_handshake_is_accepted(server: RunningServer) -> None:
    """Browsers authenticate with the ["bearer", token] subprotocol pair."""
    token = server.token("alice")
    request = request_bytes(server, f"Sec-WebSocket-Protocol: bearer, {token}")
    request = request.replace(f"Authorization: Bearer {token}\r\n".encode(), b"")
    head, client = await exchange(server, request)
    assert head.startswith(b"HTTP/1.1 101")
    assert b"\r\nSec-WebSocket-Protocol: bearer\r\n" in head
    assert (await client.next_event())["event"] == "connected"
    client.writer.close()


# -- early bytes, step by step -----------------------------------------------------


def upgraded(app: Any) -> tuple[FakeTransport, WsgenHttpProtocol]:
    """wsgen's HTTP protocol on a fake transport, for ``app``."""
    config = loaded_config(app)
    http = WsgenHttpProtocol(config=config, server_state=ServerState(), app_state={})
    transport = FakeTransport()
    http.connection_made(transport)
    return transport, http


@pytest.mark.parametrize("cut", [0, 1, 2, 6, 8])
async def test_frames_sent_before_the_101_are_read_after_it(cut: int) -> None:
    """A client that does not wait for the 101: the bytes of its first frames, in the
    request's read and in later ones, wait for the accept, then are read in order."""
    accept = asyncio.Event()
    received: list[Any] = []
    transport, http = upgraded(app_accepting_on(accept, received))
    first, second = text({"type": "ping", "ref": 1}), text({"type": "ping", "ref": 2})
    http.data_received(HANDSHAKE + first[:cut])
    protocol = transport.protocol
    assert isinstance(protocol, WsgenProtocol)
    await asyncio.sleep(0)
    protocol.data_received(first[cut:] + second[:3])
    accept.set()
    await settle()
    assert transport.written.startswith(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + RFC_ACCEPT + b"\r\n"
    )
    protocol.data_received(second[3:])
    await settle()
    assert [json.loads(t)["ref"] for t in received] == [1, 2]
    assert not transport.closing
    protocol.connection_lost(None)


async def test_the_101_goes_before_a_plain_asgi_send_and_a_close_on_return() -> None:
    """The 101 waits for the app's first frames; anything written another way (here
    uvicorn's own send, then the close when the app returns) writes it first."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "bye"})

    transport, http = upgraded(app)
    http.data_received(HANDSHAKE)
    await settle()
    assert transport.written.startswith(b"HTTP/1.1 101 ")
    assert transport.written.endswith(b"\r\n\r\n\x81\x03bye")
    assert transport.closing


async def test_a_ping_sent_with_the_request_is_answered_after_the_101() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await receive()

    transport, http = upgraded(app)
    http.data_received(HANDSHAKE + frame(PING, b"hi"))
    await settle()
    head, _, rest = bytes(transport.written).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert rest == b"\x8a\x02hi"  # the pong, after the 101
    transport.protocol.connection_lost(None)


async def test_websockets_frame_parser_is_made_when_websockets_first_reads() -> None:
    """Text frames are cut by wsgen; websockets' parser (a generator referring to its
    connection) is made for the first frame it reads, a ping here."""
    accept = asyncio.Event()
    accept.set()
    received: list[Any] = []
    transport, http = upgraded(app_accepting_on(accept, received))
    http.data_received(HANDSHAKE)
    await settle()
    protocol = transport.protocol
    assert isinstance(protocol, WsgenProtocol)
    assert protocol.conn.parser is None
    protocol.data_received(text({"n": 1}))
    await settle()
    assert received == ['{"n": 1}'] and protocol.conn.parser is None
    protocol.data_received(frame(PING, b"hi") + text({"n": 2}))
    await settle()
    assert protocol.conn.parser is not None
    assert bytes(transport.written).endswith(b"\x8a\x02hi")  # the pong
    assert received == ['{"n": 1}', '{"n": 2}']
    protocol.connection_lost(None)


async def test_servers_in_one_process_each_keep_their_connection_class() -> None:
    """Connections of two servers made in turn: one class per server, reused."""

    async def app(scope: Any, receive: Any, send: Any) -> None: ...

    configs = [loaded_config(app) for _ in range(2)]
    states = [ServerState(), ServerState()]
    app_states: list[dict[str, Any]] = [{}, {}]
    classes = [
        type(
            WsgenProtocol(
                config=configs[i % 2], server_state=states[i % 2], app_state=app_states[i % 2]
            )
        )
        for i in range(6)
    ]
    assert classes[0] is not classes[1]
    assert classes[0::2] == [classes[0]] * 3 and classes[1::2] == [classes[1]] * 3
    assert all(issubclass(c, WsgenProtocol) for c in classes)


async def test_each_connection_has_the_websockets_side_its_init_would_make() -> None:
    """core.protocol builds websockets' ServerProtocol without its __init__ (which
    makes a uuid4 and a handshake parser per connection): same attributes, equal
    values, and nothing mutable shared between two connections."""

    async def app(scope: Any, receive: Any, send: Any) -> None: ...

    config, state, app_state = loaded_config(app), ServerState(), {}
    one, two = (
        WsgenProtocol(config=config, server_state=state, app_state=app_state).conn for _ in range(2)
    )
    assert config.ws_per_message_deflate  # uvicorn's default: the factory is shared
    assert [type(f) for f in one.available_extensions] == [ServerPerMessageDeflateFactory]
    model = ServerProtocol(
        extensions=one.available_extensions, max_size=config.ws_max_size, logger=one.logger
    )
    made, expected = vars(one), vars(model)
    assert set(made) == set(expected) - {"id", "parser"}
    for name, value in made.items():
        if name == "reader":
            assert type(value) is type(expected[name]) and not value.buffer
        else:
            assert value == expected[name], name
    for name in ("extensions", "reader", "events", "writes"):
        assert getattr(one, name) is not getattr(two, name), name
    assert isinstance(one.id, uuid.UUID) and one.id == one.id != two.id
    assert isinstance(one, ServerProtocol)


@pytest.mark.parametrize("family", ["ipv4", "ipv6", "unix"])
async def test_connection_addresses_are_uvicorns_without_asking_the_socket(
    family: str, tmp_path: Any
) -> None:
    """WsgenHttpProtocol takes the ASGI ``server`` and ``client`` from the addresses the
    event loop noted at accept; they must equal what uvicorn's helpers get from the socket."""
    seen: list[tuple[Any, ...]] = []

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            seen.append(
                (local_address(transport), remote_address(transport),
                 get_local_addr(transport), get_remote_addr(transport))
            )  # fmt: skip
            transport.close()

    loop = asyncio.get_running_loop()
    if family == "unix":
        path = str(tmp_path / "s.sock")
        server = await loop.create_unix_server(Probe, path)
        _, writer = await asyncio.open_unix_connection(path)
    else:
        host = "127.0.0.1" if family == "ipv4" else "::1"
        try:
            server = await loop.create_server(Probe, host, 0)
        except OSError:
            pytest.skip(f"no {host} on this machine")
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection(host, port)
    try:
        async with asyncio.timeout(RECEIVE_TIMEOUT):
            while not seen:
                await asyncio.sleep(0.001)
    finally:
        writer.close()
        server.close()
    ours_local, ours_remote, uvicorn_local, uvicorn_remote = seen[0]
    assert (ours_local, ours_remote) == (uvicorn_local, uvicorn_remote)
    if family != "unix":
        assert ours_local is not None and ours_remote is not None
        assert ours_remote[0] == ours_local[0] and isinstance(ours_remote[1], int)
