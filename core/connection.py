"""The connection object hooks receive as ``ws``.

It wraps the server's WebSocket so that handlers, and everything that keeps
connections (the hub), depend on this small interface only.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any, Protocol

from core.close_codes import clip_reason
from core.envelope import Ref, encode, error_frame


class Transport(Protocol):
    """The part of a server WebSocket a connection needs."""

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


class Connection:
    """One accepted WebSocket.

    ``id`` is unique in the deployment (logs and echo prevention use it);
    ``user_id`` is who the auth middleware says is on the other end.
    Sends to a connection that is already closed are dropped and return False:
    a peer leaving during a broadcast is normal, not an error.
    """

    __slots__ = ("_transport", "close_code", "closed", "id", "route", "state", "user_id")

    def __init__(self, transport: Transport, route: str, user_id: str | None) -> None:
        self.id = str(uuid.uuid4())
        self.route = route
        self.user_id = user_id
        self.state: dict[str, Any] = {}
        self.closed = False
        self.close_code: int | None = None
        self._transport = transport

    async def send(self, event: str, payload: Any = None) -> bool:
        """Send one ``{"event", "payload"}`` frame."""
        return await self.send_encoded(encode(event, payload))

    async def send_error(self, code: str, message: str, ref: Ref | None = None) -> bool:
        return await self.send_encoded(error_frame(code, message, ref))

    async def send_encoded(self, frame: str) -> bool:
        """Send a frame made by ``core.envelope.encode`` (encoded once per broadcast)."""
        if self.closed:
            return False
        try:
            await self._transport.send_text(frame)
        except (OSError, RuntimeError):
            # The peer went away under us; the receive loop sees the disconnect.
            self.closed = True
            return False
        return True

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code``; later calls do nothing."""
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        with contextlib.suppress(OSError, RuntimeError):
            await self._transport.close(code, clip_reason(reason))

    def __repr__(self) -> str:
        return f"<Connection {self.id} user={self.user_id} route={self.route}>"
