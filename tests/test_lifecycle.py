"""Hook failures are logged once, in one place, and stay inside their connection (SPEC §9)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from core import Connection, Context, Event, Inbound, Reject, WebSocketHandler, now_iso
from core.settings import Settings
from core.testing import RunningServer, bearer, receive_json, serve
from middleware.auth import auth_middleware
from tests.conftest import LogCapture


class HookFailure(Exception):
    """What the test handlers raise on purpose."""


async def on_connect(ctx: Context, ws: Connection) -> None:
    if ctx.path_params["mode"] == "connect":
        raise HookFailure("on_connect failed on purpose")
    await ws.send("connected", {"userId": ctx.user_id, "timestamp": now_iso()})


async def on_ping(ctx: Context, ws: Connection, message: Inbound) -> None:
    await ws.send("pong", {"timestamp": now_iso()})


async def on_explode(ctx: Context, ws: Connection, message: Inbound) -> None:
    raise HookFailure("on_message failed on purpose")


async def on_close(ctx: Context, ws: Connection) -> None:
    if ctx.path_params["mode"] == "close":
        raise HookFailure("on_close failed on purpose")


async def on_error(ctx: Context, ws: Connection, error: BaseException) -> None:
    if ctx.path_params["mode"] == "error":
        raise HookFailure("on_error failed on purpose")


async def failing_middleware(ctx: Context) -> None:
    if ctx.path_params["mode"] == "middleware":
        raise HookFailure("middleware failed on purpose")
    if ctx.path_params["mode"] == "reject":
        raise Reject(403, "forbidden", "not for you")


HANDLER = WebSocketHandler(
    path="/ws/test/:mode",
    middleware=[auth_middleware(), failing_middleware],
    on_connect=on_connect,
    on_close=on_close,
    on_error=on_error,
    events=[Event("ping", on_ping), Event("explode", on_explode)],
)


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[RunningServer]:
    async with serve([HANDLER], settings) as running:
        yield running


def connect(server: RunningServer, mode: str, user: str = "u1") -> Any:
    return websockets.connect(
        server.ws_url(f"/ws/test/{mode}"), additional_headers=bearer(server.token(user))
    )


async def assert_alive(ws: ClientConnection) -> None:
    await ws.send('{"type": "ping"}')
    assert (await receive_json(ws))["event"] == "pong"


def assert_logged_once(logs: LogCapture, phase: str, user: str = "u1") -> dict[str, Any]:
    records = logs.records("handler failed", phase=phase)
    assert len(records) == 1, records
    record = records[0]
    assert record["route"] == "/ws/test/:mode"
    assert record["user_id"] == user
    assert record["level"] == "error"
    assert "HookFailure" in record["exception"] and "on purpose" in record["exception"]
    return record


async def test_on_connect_failure_closes_1011_and_spares_others(
    server: RunningServer, logs: LogCapture
) -> None:
    """A failing on_connect closes that connection with 1011; another connection is unaffected."""
    async with connect(server, "ok", "bystander") as other:
        assert (await receive_json(other))["event"] == "connected"
        async with connect(server, "connect") as ws:
            with pytest.raises(websockets.ConnectionClosedError) as info:
                await receive_json(ws)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1011
        await assert_alive(other)
    record = assert_logged_once(logs, "on_connect")
    assert record["connection_id"]
    assert logs.records("handler failed", user_id="bystander") == []


async def test_on_message_failure_answers_internal_error_and_keeps_connection(
    server: RunningServer, logs: LogCapture
) -> None:
    """A failing event handler answers internal_error with the ref; the connection stays."""
    async with connect(server, "ok", "bystander") as other, connect(server, "ok") as ws:
        await receive_json(other)
        await receive_json(ws)
        await ws.send(orjson.dumps({"type": "explode", "ref": "r-1"}).decode())
        reply = await receive_json(ws)
        assert reply == {
            "event": "error",
            "payload": {
                "code": "internal_error",
                "message": "the server failed to handle this message",
                "ref": "r-1",
            },
        }
        await assert_alive(ws)
        await assert_alive(other)
    record = assert_logged_once(logs, "on_message")
    assert record["message_event"] == "explode"


async def test_on_close_failure_is_logged_once(server: RunningServer, logs: LogCapture) -> None:
    """A failing on_close is logged with its fields; the server keeps serving."""
    async with connect(server, "close") as ws:
        await receive_json(ws)
    async with connect(server, "ok", "next") as ws:
        await receive_json(ws)
        await assert_alive(ws)
    assert_logged_once(logs, "on_close")


async def test_on_error_failure_is_logged_after_the_hook_failure(
    server: RunningServer, logs: LogCapture
) -> None:
    """When on_error itself fails, both failures are logged once each; the client is answered."""
    async with connect(server, "error") as ws:
        await receive_json(ws)
        await ws.send('{"type": "explode", "ref": 3}')
        assert (await receive_json(ws))["payload"]["code"] == "internal_error"
        await assert_alive(ws)
    assert_logged_once(logs, "on_message")
    assert_logged_once(logs, "on_error")


async def test_middleware_failure_refuses_with_500(server: RunningServer, logs: LogCapture) -> None:
    """A middleware that crashes refuses the handshake with HTTP 500 and is logged."""
    with pytest.raises(websockets.InvalidStatus) as info:
        async with connect(server, "middleware"):
            pass
    assert info.value.response.status_code == 500
    record = assert_logged_once(logs, "middleware")
    assert record["connection_id"] is None


async def test_reject_refuses_with_its_status_and_body(server: RunningServer) -> None:
    """A Reject from a middleware becomes the HTTP response of the refused handshake."""
    with pytest.raises(websockets.InvalidStatus) as info:
        async with connect(server, "reject"):
            pass
    assert info.value.response.status_code == 403
    assert orjson.loads(info.value.response.body) == {
        "error": "forbidden",
        "message": "not for you",
    }


async def test_every_failure_phase_leaves_the_server_serving(
    server: RunningServer, logs: LogCapture
) -> None:
    """After a failure in each phase, a new connection still works end to end."""
    for mode in ("connect", "close", "error", "middleware"):
        try:
            async with connect(server, mode) as ws:
                await ws.send('{"type": "explode"}')
        except (websockets.InvalidStatus, websockets.ConnectionClosed):
            pass
    async with connect(server, "ok", "after") as ws:
        assert (await receive_json(ws))["payload"]["userId"] == "after"
        await assert_alive(ws)


async def test_connected_comes_before_deliveries_that_raced_it(settings: Settings) -> None:
    """Hub deliveries that race `on_connect` are held: its greeting stays the first frame."""
    joined, gate = asyncio.Event(), asyncio.Event()

    async def greet(ctx: Context, ws: Connection) -> None:
        await ctx.services.hub.join("greet/1", ws)
        joined.set()
        await gate.wait()  # e.g. a store or broker round trip
        await ws.send("connected", {"userId": ctx.user_id})

    handler = WebSocketHandler(path="/ws/greet", middleware=[auth_middleware()], on_connect=greet)
    async with serve([handler], settings) as running:
        url = running.ws_url("/ws/greet")
        async with websockets.connect(url, additional_headers=bearer(running.token("u1"))) as ws:
            await asyncio.wait_for(joined.wait(), 5)
            await running.services.hub.broadcast("greet/1", "news", {"n": 1})
            gate.set()
            assert (await receive_json(ws))["event"] == "connected"
            assert await receive_json(ws) == {"event": "news", "payload": {"n": 1}}


async def on_validate_itself(ctx: Context, ws: Connection, message: Inbound) -> None:
    from pydantic import BaseModel

    class Strict(BaseModel):
        number: int

    Strict.model_validate({"number": message.data["secret"]})  # raises, quoting the input


PRIVATE = WebSocketHandler(
    path="/ws/private",
    middleware=[auth_middleware()],
    events=[Event("check", on_validate_itself, model=dict)],
)


async def test_a_validation_error_is_logged_without_its_input(
    settings: Settings, logs: LogCapture
) -> None:
    """A handler's own ValidationError is logged by field and problem, never with the input."""
    async with serve([PRIVATE], settings) as server, connect_to(server, "/ws/private") as ws:
        await ws.send(orjson.dumps({"type": "check", "data": {"secret": "my-diagnosis"}}).decode())
        assert (await receive_json(ws))["payload"]["code"] == "internal_error"
    record = assert_logged_once_at(logs, "on_message", "/ws/private")
    assert "number" in record["exception"]
    assert "my-diagnosis" not in str(logs.lines)


def connect_to(server: RunningServer, path: str) -> Any:
    return websockets.connect(server.ws_url(path), additional_headers=bearer(server.token("u1")))


def assert_logged_once_at(logs: LogCapture, phase: str, route: str) -> dict[str, Any]:
    records = logs.records("handler failed", phase=phase, route=route)
    assert len(records) == 1, records
    return records[0]
