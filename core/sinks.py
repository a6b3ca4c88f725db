"""Where a connection's outgoing frames go: wsgen's protocol itself, or plain ASGI as a fallback.

Both are non-blocking for the caller: ``send_frame`` never awaits, so a fan-out loop
never waits on one socket, and a peer whose queue passes its bound is closed with
1013 (slow consumer).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Protocol

from starlette.websockets import WebSocket

from core import metrics
from core.close_codes import CloseCode
from core.frames import OutFrame
from core.protocol import EXTENSION, WsgenProtocol


class Sink(Protocol):
    """What a :class:`~core.connection.Connection` sends through.

    :class:`~core.protocol.WsgenProtocol` is one itself (the production path: a
    frame goes from the connection straight to the protocol's pending list);
    :class:`AsgiSink` is the fallback for other servers.
    """

    def send_frame(self, frame: OutFrame) -> bool:
        """Queue ``frame``; False when the connection is closing or closed."""

    def close_now(self, code: int, reason: str) -> None:
        """Close after what is queued; returns at once."""

    async def stop(self) -> None:
        """The connection is over: finish the close that was asked for, release the rest."""


STOP_TIMEOUT = 5.0


class AsgiSink:
    """Plain ASGI sends from one writer task per connection, for servers other than wsgen's.

    Slower (a task switch per frame) and, under a stalled reader, unable to deliver
    its close frame; kept so that wsgen runs on any ASGI server.
    """

    def __init__(self, websocket: WebSocket, queue_limit: int) -> None:
        self._websocket = websocket
        self._limit = queue_limit
        self._queue: deque[OutFrame] = deque()
        self._wakeup = asyncio.Event()
        self._close: tuple[int, str] | None = None
        self._done = False
        self._task = asyncio.get_running_loop().create_task(self._write())

    def send_frame(self, frame: OutFrame) -> bool:
        if self._done or self._close is not None:
            return False
        if len(self._queue) >= self._limit:
            metrics.limit_closed("slow_consumer")
            self._queue.clear()
            self.close_now(CloseCode.TRY_AGAIN_LATER, "slow consumer")
            return False
        self._queue.append(frame)
        self._wakeup.set()
        return True

    def close_now(self, code: int, reason: str) -> None:
        if self._close is None:
            self._close = (code, reason)
            self._wakeup.set()

    async def stop(self) -> None:
        """Let the writer send what is queued and the close frame, for a bounded time."""
        self.close_now(CloseCode.NORMAL_CLOSURE, "")
        self._done = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), STOP_TIMEOUT)
        except TimeoutError:
            self._task.cancel()

    async def _write(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._queue:
                    await self._websocket.send_text(self._queue.popleft().text)
                if self._close is not None:
                    await self._websocket.close(*self._close)
                    return
        except Exception:  # the peer went away; the receive loop sees the disconnect
            self._done = True
            with contextlib.suppress(Exception):
                await self._websocket.close(CloseCode.NORMAL_CLOSURE)


def sink_for(websocket: WebSocket, queue_limit: int) -> Sink:
    protocol = websocket.scope.get("extensions", {}).get(EXTENSION)
    if isinstance(protocol, WsgenProtocol):
        if protocol.queue_limit != queue_limit:  # usually the class's default: no own copy
            protocol.queue_limit = queue_limit
        return protocol
    return AsgiSink(websocket, queue_limit)
