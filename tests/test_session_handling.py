"""What a handler sees of asyncio, whichever way its message is handled.

A connection's messages are handled by its session's task, or, while that task is
waiting for messages, at once in the protocol's read callback with the task made
current (core.endpoint._Session). Each test here first has a message handled and
answered, so the task is waiting when the next message comes: that message takes
the second way. Handlers must not be able to tell the difference.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from core import Connection, Context, Event, Inbound, WebSocketHandler
from core.app import create_app
from core.server import uvicorn_options
from core.settings import Settings
from core.testing import Client, FakeTransport, RunningServer, connect, serve
from core.upgrade import WsgenHttpProtocol
from middleware.auth import auth_middleware
from tests.conftest import LogCapture
from tests.test_receive_path import CLOSE, TIMEOUT, frame, raw_connection, text

handled = contextvars.ContextVar("handled", default=0)


async def on_probe(ctx: Context, ws: Connection, message: Inbound) -> dict[str, Any]:
    """What the handler sees: its task and the connection's context variables."""
    handled.set(handled.get() + 1)
    task = asyncio.current_task()
    return {"task": id(task) if task is not None else None, "handled": handled.get()}


async def on_sleep(ctx: Context, ws: Connection, message: Inbound) -> dict[str, Any]:
    """Has to wait: handed to the task part-way, when it started outside it."""
    await asyncio.sleep(0.05)
    return {"result": "slept"}


async def on_timeout(ctx: Context, ws: Connection, message: Inbound) -> dict[str, Any]:
    """asyncio.timeout() cancels the task it was entered in: it must be the one that
    goes on with the handler (the way redis-py checks a pooled connection, timeout 0)."""
    delay = (message.data or {}).get("delay", 0)
    try:
        async with asyncio.timeout(delay):
            await asyncio.Event().wait()
    except TimeoutError:
        return {"result": "timed out"}
    return {"result": "not reached"}


async def on_timeout_child(ctx: Context, ws: Connection, message: Inbound) -> dict[str, Any]:
    """A timeout cancels the task it was entered in, and the task cancels what it awaits."""
    child = asyncio.get_running_loop().create_task(asyncio.sleep(5))
    try:
        async with asyncio.timeout(0):
            await child
    except TimeoutError:
        pass
    return {"child_cancelled": child.cancelled()}


shared: list[asyncio.Future[str]] = []


async def on_shared_wait(ctx: Context, ws: Connection, message: Inbound) -> dict[str, Any]:
    """Awaits a future that other connections' handlers await too (a single-flight cache)."""
    loop = asyncio.get_running_loop()
    if not shared or shared[0].done():
        shared[:] = [loop.create_future()]
        loop.call_later(0.05, shared[0].set_result, "value")
    return {"result": await shared[0]}


async def on_close_me(ctx: Context, ws: Connection, message: Inbound) -> None:
    await ws.close(4000, "closed by its handler")


async def on_cancel_self(ctx: Context, ws: Connection, message: Inbound) -> None:
    cancelled = asyncio.get_running_loop().create_future()
    cancelled.cancel()
    await cancelled


HANDLER = WebSocketHandler(
    path="/ws/probe",
    middleware=[auth_middleware()],
    events=[
        Event("probe", on_probe),
        Event("sleep", on_sleep),
        Event("timeout", on_timeout),
        Event("cancel-self", on_cancel_self),
        Event("timeout-child", on_timeout_child),
        Event("close-me", on_close_me),
        Event("shared-wait", on_shared_wait),
    ],
)


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[RunningServer]:
    async with serve([HANDLER], settings) as running:
        yield running


async def ack(client: Client, event: str, data: Any = None, ref: str = "r") -> Any:
    """The ack's payload (the handler's result, with the ref)."""
    reply = await client.request(event, data, ref=ref)
    assert reply["event"] == "ack", reply
    assert reply["payload"]["ref"] == ref
    return reply["payload"]


async def test_handlers_run_in_the_connections_task_with_its_context(
    server: RunningServer,
) -> None:
    """Every handler has a current task, the same one while the connection is busy,
    and sees the context variables the connection's earlier handlers set."""
    async with connect(server, "/ws/probe", "u1") as client:
        seen = [await ack(client, "probe", ref=str(n)) for n in range(5)]
    assert all(probe["task"] is not None for probe in seen)
    assert len({probe["task"] for probe in seen}) == 1, seen
    assert [probe["handled"] for probe in seen] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("delay", [0, 0.01])
async def test_asyncio_timeout_cancels_the_handler_that_entered_it(
    server: RunningServer, delay: float
) -> None:
    async with connect(server, "/ws/probe", "u1") as client:
        await ack(client, "probe")  # the task now waits: the next one starts outside it
        assert await ack(client, "timeout", {"delay": delay}) == {"ref": "r", "result": "timed out"}
        assert await ack(client, "timeout", {"delay": delay}) == {"ref": "r", "result": "timed out"}
        assert (await ack(client, "probe"))["handled"] == 2


async def test_a_handler_that_waits_keeps_the_order_of_the_replies(
    server: RunningServer,
) -> None:
    """A message that comes while a handler waits is handled after it."""
    async with connect(server, "/ws/probe", "u1") as client:
        await ack(client, "probe", ref="first")
        await client.send("sleep", ref="sleep")
        await client.send("probe", ref="after")
        assert (await client.recv())["payload"] == {"ref": "sleep", "result": "slept"}
        after = await client.recv()
        assert after["payload"]["ref"] == "after"
        assert after["payload"]["handled"] == 2


async def test_a_handler_raising_cancelled_error_is_a_handler_failure(
    server: RunningServer, logs: LogCapture
) -> None:
    """CancelledError out of a handler whose task nobody cancelled (it awaited something
    another task cancelled): internal_error and one log record, as for any exception;
    the connection is served on."""
    async with connect(server, "/ws/probe", "u1") as client:
        await ack(client, "probe")
        reply = await client.request("cancel-self", ref="c")
        assert reply["event"] == "error"
        assert reply["payload"]["code"] == "internal_error"
        assert reply["payload"]["ref"] == "c"
        assert (await ack(client, "probe"))["handled"] == 2
    records = logs.records("handler failed", phase="on_message")
    assert len(records) == 1 and "CancelledError" in records[0]["exception"]


async def test_a_timeout_cancels_what_the_handler_awaits(server: RunningServer) -> None:
    """As in a task, a cancellation reaches the future the handler waits on (here a child
    task), also when the handler started outside the task and was handed to it."""
    async with connect(server, "/ws/probe", "u1") as client:
        await ack(client, "probe")
        assert (await ack(client, "timeout-child"))["child_cancelled"] is True


async def test_a_close_among_queued_frames_still_reads_the_close_reply(
    server: RunningServer,
) -> None:
    """A handler closes its connection while 100 more frames came in the same read: the
    server stops reading them as messages, reads the client's close reply and ends the
    TCP connection cleanly (not by aborting it after its close timeout)."""
    raw = await raw_connection(server, "/ws/probe", "u1")
    try:
        raw.writer.write(text({"type": "probe", "ref": "p"}))
        assert (await raw.next_event())["event"] == "ack"
        burst = [text({"type": "probe", "ref": n}) for n in range(100)]
        raw.writer.write(text({"type": "close-me"}) + b"".join(burst))
        assert await raw.close_code() == 4000
        raw.writer.write(frame(CLOSE, (4000).to_bytes(2, "big")))
        async with asyncio.timeout(TIMEOUT):  # the server's close timeout is 10 s
            assert await raw.reader.read() == b""  # end of stream, not a reset
    finally:
        raw.writer.close()


async def test_handlers_of_two_connections_await_one_future(server: RunningServer) -> None:
    """Both messages are handled in the same pass, outside the tasks, and wait on one
    future: each connection's task then takes over its own handler."""
    clients = [await raw_connection(server, "/ws/probe", user) for user in ("u1", "u2")]
    try:
        for raw in clients:
            raw.writer.write(text({"type": "probe", "ref": "p"}))
            assert (await raw.next_event())["event"] == "ack"  # its task now waits
        for raw in clients:  # no await in between: the server reads both in one pass
            raw.writer.write(text({"type": "shared-wait", "ref": "s"}))
        for raw in clients:
            assert await raw.next_event() == {
                "event": "ack",
                "payload": {"ref": "s", "result": "value"},
            }
    finally:
        for raw in clients:
            raw.writer.close()


def replies(written: bytes) -> list[dict[str, Any]]:
    """The server's text frames in what a fake transport got, after the 101."""
    head = written.find(b"\r\n\r\n")
    data = written[head + 4 :] if head >= 0 else b""
    messages, pos = [], 0
    while pos < len(data):
        length, start = data[pos + 1] & 0x7F, pos + 2
        if length == 126:
            length, start = int.from_bytes(data[pos + 2 : pos + 4]), pos + 4
        messages.append(json.loads(data[start : start + length]))
        pos = start + length
    return messages


async def test_a_frame_for_a_waiting_task_is_handled_in_the_read_callback(
    settings: Settings,
) -> None:
    """Read by the loop's callback (outside any task) while the connection's task waits,
    a text frame is handled before ``data_received`` returns, without going through the
    queue; a handler that has to wait goes on in the task, and the frame read with it is
    queued and answered after it."""
    app = create_app([HANDLER], settings)
    async with app.router.lifespan_context(app):
        token = app.state.services.tokens.issue("alice")
        config = uvicorn.Config(app, **uvicorn_options(settings))
        config.load()
        http = WsgenHttpProtocol(config=config, server_state=ServerState(), app_state={})
        transport = FakeTransport()
        http.connection_made(transport)
        http.data_received(
            b"GET /ws/probe HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\n\r\n"
        )
        protocol = transport.protocol
        loop = asyncio.get_running_loop()
        dequeued: list[Any] = []  # the ASGI events the session takes from the queue
        next_message = protocol.next_message

        def spy() -> Any:
            message = next_message()
            if message is not None:
                dequeued.append(message)
            return message

        protocol.next_message = spy

        async def read(data: bytes, expected: int) -> dict[str, Any]:
            """Feed ``data`` as uvloop would, and wait for ``expected`` replies in all."""
            seen: dict[str, Any] = {}

            def callback() -> None:
                assert asyncio.current_task() is None
                protocol.data_received(data)
                seen["pending"] = b"".join(protocol._pending)
                seen["queued"] = protocol._inbox.qsize()

            loop.call_soon(callback)
            async with asyncio.timeout(TIMEOUT):
                while len(replies(bytes(transport.written))) < expected:
                    await asyncio.sleep(0.001)
            return seen

        def probe(ref: str) -> bytes:
            return text({"type": "probe", "ref": ref})

        await read(probe("1"), 1)  # the first message starts the connection's task
        for _ in range(10):  # ... which then waits for the next one
            await asyncio.sleep(0)
        dequeued.clear()
        seen = await read(probe("2"), 2)
        assert b'"ref":"2"' in seen["pending"], seen  # answered inside the callback
        assert seen["queued"] == 0 and dequeued == []  # as a str, not through the queue

        seen = await read(text({"type": "sleep", "ref": "3"}) + probe("4"), 4)
        assert seen["pending"] == b"" and seen["queued"] == 1  # "4" waits behind "3"
        assert [json.loads(m["text"])["ref"] for m in dequeued] == ["4"]
        refs = [reply["payload"]["ref"] for reply in replies(bytes(transport.written))]
        assert refs == ["1", "2", "3", "4"]
        assert [reply["event"] for reply in replies(bytes(transport.written))] == ["ack"] * 4
        protocol.connection_lost(None)
        for _ in range(10):
            await asyncio.sleep(0)
