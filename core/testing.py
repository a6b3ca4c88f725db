"""Helpers for testing handlers against a real server, as clients will use it.

    async with serve(handlers, settings) as server:
        async with connect(server.ws_url("/ws/user"), token=server.token("u1")) as ws:
            ...

The server is a real uvicorn on a loopback port chosen by the OS; it is ready
when ``serve`` yields (no sleeping).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette

from core.app import create_app
from core.server import uvicorn_options
from core.services import Services
from core.settings import Settings
from core.ws import WebSocketHandler

RECEIVE_TIMEOUT = 5.0


class FakeTransport(asyncio.Transport):
    """A transport for driving the protocol classes by hand: keeps what is written,
    and the protocol it is handed at an upgrade (``set_protocol``)."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closing = False
        self.protocol: Any = None

    def write(self, data: Any) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def get_write_buffer_size(self) -> int:
        return 0

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1), "sockname": ("127.0.0.1", 2)}.get(name, default)


@dataclass(slots=True)
class RunningServer:
    app: Starlette
    host: str
    port: int
    uvicorn: uvicorn.Server
    task: asyncio.Task[None]

    async def stop(self) -> None:
        """Shut down as on SIGTERM: stop accepting, close connections, run the lifespan exit."""
        self.uvicorn.should_exit = True
        await asyncio.wait_for(asyncio.shield(self.task), 15)

    @property
    def services(self) -> Services:
        return self.app.state.services  # type: ignore[no-any-return]

    def ws_url(self, path: str) -> str:
        return f"ws://{self.host}:{self.port}{path}"

    def http_url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def token(self, user_id: str, ttl: float = 3600) -> str:
        return self.services.tokens.issue(user_id, ttl)


@contextlib.asynccontextmanager
async def serve(
    handlers: Sequence[WebSocketHandler] | Starlette, settings: Settings, **overrides: Any
) -> AsyncIterator[RunningServer]:
    """Run a real uvicorn server in this event loop on 127.0.0.1 and an OS-chosen port.

    ``overrides`` replace uvicorn options, e.g. ``ws="websockets-sansio"`` to run on
    uvicorn's own protocol class (the plain-ASGI fallback path).
    """
    app = handlers if isinstance(handlers, Starlette) else create_app(handlers, settings)
    options = {**uvicorn_options(settings), **overrides}
    config = uvicorn.Config(app, host="127.0.0.1", port=0, **options)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # raises why startup failed
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.005)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield RunningServer(app, "127.0.0.1", port, server, task)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


async def receive_json(ws: Any, timeout: float = RECEIVE_TIMEOUT) -> Any:
    """The next frame of a ``websockets`` client, decoded; fails after ``timeout`` seconds."""
    return orjson.loads(await asyncio.wait_for(ws.recv(), timeout))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Client:
    """A real WebSocket client with the protocol's framing, for tests.

    Every receive has a timeout; ``expect`` asserts the next frame's event, so a
    test that checks "nothing else arrived" sends a ``ping`` and expects ``pong``
    next (frames to one connection keep their order).
    """

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def recv(self, timeout: float = RECEIVE_TIMEOUT) -> dict[str, Any]:
        frame: dict[str, Any] = await receive_json(self.ws, timeout)
        return frame

    async def expect(self, event: str, timeout: float = RECEIVE_TIMEOUT) -> Any:
        """The payload of the next frame, which must be ``event``."""
        frame = await self.recv(timeout)
        assert frame["event"] == event, f"expected {event!r}, got {frame}"
        return frame["payload"]

    async def send(self, event: str, data: Any = None, **envelope: Any) -> None:
        message: dict[str, Any] = {"type": event, **envelope}
        if data is not None:
            message["data"] = data
        await self.ws.send(orjson.dumps(message).decode())

    async def request(self, event: str, data: Any = None, ref: str = "r", **envelope: Any) -> Any:
        """Send with a ``ref`` and return the next frame (an ``ack`` or an ``error``)."""
        await self.send(event, data, ref=ref, **envelope)
        return await self.recv()

    async def assert_quiet(self) -> None:
        """Nothing is queued for this client: the answer to a ping is the next frame."""
        await self.send("ping")
        await self.expect("pong")

    async def closed_with(self, timeout: float = RECEIVE_TIMEOUT) -> int | None:
        """Wait for the server to close; the close code it sent (frames before it are skipped)."""
        import websockets

        async with asyncio.timeout(timeout):
            try:
                while True:
                    await self.ws.recv()
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd is not None else None


@contextlib.asynccontextmanager
async def connect(
    server: RunningServer, path: str, user: str | None = None, **kwargs: Any
) -> AsyncIterator[Client]:
    """A client connected to ``path`` with a fresh token for ``user`` (none when None)."""
    import websockets

    headers = bearer(server.token(user)) if user is not None else None
    async with websockets.connect(server.ws_url(path), additional_headers=headers, **kwargs) as ws:
        yield Client(ws)
