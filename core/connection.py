"""The connection object hooks receive as ``ws``.

It wraps the server's WebSocket so that handlers, and the hub that keeps
connections, depend on this small interface only.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any, Protocol

from core import metrics
from core.close_codes import CloseCode, clip_reason
from core.envelope import Ref, encode, error_frame
from core.tasks import spawn


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

    __slots__ = (
        "_expiry",
        "_transport",
        "close_code",
        "closed",
        "id",
        "route",
        "state",
        "topics",
        "user_id",
    )

    def __init__(self, transport: Transport, route: str, user_id: str | None) -> None:
        self.id = str(uuid.uuid4())
        self.route = route
        self.user_id = user_id
        self.state: dict[str, Any] = {}
        self.closed = False
        self.close_code: int | None = None
        # Hub bookkeeping: the broker topics this connection is tracked under.
        self.topics: set[str] = set()
        self._transport = transport
        self._expiry: asyncio.TimerHandle | None = None

    async def send(self, event: str, payload: Any = None) -> bool:
        """Send one ``{"event", "payload"}`` frame."""
        if await self.send_encoded(encode(event, payload)):
            metrics.sent(event).inc()
            return True
        return False

    async def send_error(self, code: str, message: str, ref: Ref | None = None) -> bool:
        metrics.protocol_error(code)
        if await self.send_encoded(error_frame(code, message, ref)):
            metrics.error_frame_sent()
            return True
        return False

    async def send_encoded(self, frame: str) -> bool:
        """Send a frame made by ``core.envelope.encode`` (encoded once per broadcast).

        Not counted in ``wsgen_messages_sent_total``: its callers count (the hub once
        per delivery, with the number of recipients).
        """
        if self.closed:
            return False
        try:
            await self._transport.send_text(frame)
        except (OSError, RuntimeError):
            # The peer went away under us; the receive loop sees the disconnect.
            self.closed = True
            return False
        return True

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close with ``code``; later calls do nothing."""
        self.expire_at(None)
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        with contextlib.suppress(OSError, RuntimeError):
            await self._transport.close(code, clip_reason(reason))

    def expire_at(self, deadline: float | None) -> None:
        """Close with 4401 at ``deadline`` (Unix time); None disarms. Re-arming replaces."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if deadline is None or self.closed:
            return
        delay = max(0.0, deadline - time.time())
        self._expiry = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        spawn(self.close(CloseCode.TOKEN_EXPIRED, "token expired"))

    def __repr__(self) -> str:
        return f"<Connection {self.id} user={self.user_id} route={self.route}>"
