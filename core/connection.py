"""The connection object hooks receive as ``ws``.

It wraps the server's WebSocket so that handlers, and the hub that keeps
connections, depend on this small interface only.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any

from core import metrics
from core.close_codes import CloseCode, clip_reason
from core.envelope import Ref, encode, error_frame
from core.frames import OutFrame
from core.tasks import spawn

if TYPE_CHECKING:
    from core.sinks import Sink


HELD_MAX = 1024
"""Hub deliveries a connection may hold back while its ``on_connect`` runs."""


class Connection:
    """One accepted WebSocket.

    ``id`` is unique in the deployment (logs and echo prevention use it);
    ``user_id`` is who the auth middleware says is on the other end.
    Sending never blocks and never raises: frames are queued for the socket, and a
    send to a connection that is closing or closed is dropped and returns False (a
    peer leaving during a broadcast is normal, not an error).
    """

    __slots__ = (
        "_expiry",
        "_held",
        "_sink",
        "close_code",
        "closed",
        "id",
        "route",
        "state",
        "topics",
        "user_id",
    )

    def __init__(self, sink: Sink, route: str, user_id: str | None, *, held: bool = False) -> None:
        self.id = str(uuid.uuid4())
        self.route = route
        self.user_id = user_id
        self.state: dict[str, Any] = {}
        self.closed = False
        self.close_code: int | None = None
        # Hub bookkeeping: the broker topics this connection is tracked under.
        self.topics: set[str] = set()
        self._sink = sink
        self._expiry: asyncio.TimerHandle | None = None
        # Hub deliveries wait here until ``release``: see ``write``.
        self._held: list[OutFrame] | None = [] if held else None

    async def send(self, event: str, payload: Any = None) -> bool:
        """Send one ``{"event", "payload"}`` frame (never held back, see ``write``)."""
        if not self.closed and self._sink.send(encode(event, payload)):
            metrics.sent(event).inc()
            return True
        return False

    async def send_error(self, code: str, message: str, ref: Ref | None = None) -> bool:
        metrics.protocol_error(code)
        if not self.closed and self._sink.send(error_frame(code, message, ref)):
            metrics.error_frame_sent()
            return True
        return False

    def write(self, frame: OutFrame) -> bool:
        """Queue a frame encoded once for many connections (the hub's fan-out).

        Not counted in ``wsgen_messages_sent_total``: the hub counts once per delivery.
        While the connection is held (during ``on_connect``, whose frames such as
        ``connected`` must come first), frames wait, up to :data:`HELD_MAX`, beyond
        which the connection is closed as a slow consumer.
        """
        if self.closed:
            return False
        if self._held is None:
            return self._sink.send(frame)
        if len(self._held) >= HELD_MAX:
            self._held = None
            spawn(self.close(CloseCode.TRY_AGAIN_LATER, "too many messages while connecting"))
            return False
        self._held.append(frame)
        return True

    def release(self) -> None:
        """Send the hub deliveries held back so far, in order; later ones go straight out."""
        held, self._held = self._held, None
        for frame in held or ():
            if self.closed or not self._sink.send(frame):
                return

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close with ``code`` after what is queued; later calls do nothing. Never blocks."""
        self.expire_at(None)
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        self._sink.close(code, clip_reason(reason))

    def gone(self, code: int | None) -> None:
        """The peer or the server ended the connection (the receive loop saw it)."""
        self.expire_at(None)
        if not self.closed:
            self.closed = True
            self.close_code = code

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
