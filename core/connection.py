"""The connection object hooks receive as ``ws``.

It wraps the server's WebSocket so that handlers, and the hub that keeps
connections, depend on this small interface only.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from core import metrics
from core.close_codes import CloseCode, clip_reason
from core.deadlines import deadlines
from core.envelope import Ref, encode, error_frame
from core.frames import OutFrame
from core.ids import new_id
from core.tasks import spawn

if TYPE_CHECKING:
    from core.sinks import Sink


class Connection:
    """One accepted WebSocket.

    ``id`` is unique in the deployment (logs and echo prevention use it);
    ``user_id`` is who the auth middleware says is on the other end.
    Sending never blocks and never raises: frames are queued for the socket, and a
    send to a connection that is closing or closed is dropped and returns False (a
    peer leaving during a broadcast is normal, not an error).

    While ``on_connect`` runs, deliveries from the hub (:meth:`write`) are held back
    and the hook's own :meth:`send` goes first, so that its greeting (`connected`) is
    the first frame even when the connection joined a busy channel before sending it.
    """

    __slots__ = (
        "_held",
        "_hold_limit",
        "_sink",
        "close_code",
        "closed",
        "deadline_key",
        "id",
        "route",
        "state",
        "topics",
        "user_id",
    )

    def __init__(self, sink: Sink, route: str, user_id: str | None) -> None:
        self.id = new_id()
        self.route = route
        self.user_id = user_id
        self.state: dict[str, Any] = {}
        self.closed = False
        self.close_code: int | None = None
        # Hub bookkeeping: the broker topics this connection is tracked under.
        self.topics: set[str] = set()
        self._sink = sink
        self.deadline_key: int | None = None  # its token's expiry (core.deadlines)
        self._held: list[OutFrame] | None = None
        self._hold_limit = 0

    async def send(self, event: str, payload: Any = None) -> bool:
        """Send one ``{"event", "payload"}`` frame (ahead of held deliveries)."""
        if not self.closed and self._sink.send_frame(encode(event, payload)):
            metrics.sent(event).inc()
            return True
        return False

    async def send_error(self, code: str, message: str, ref: Ref | None = None) -> bool:
        metrics.protocol_error(code)
        if not self.closed and self._sink.send_frame(error_frame(code, message, ref)):
            metrics.error_frame_sent()
            return True
        return False

    def write(self, frame: OutFrame) -> bool:
        """Queue a frame, e.g. one encoded once for many connections (the hub's fan-out).

        Not counted in ``wsgen_messages_sent_total``: the hub counts once per delivery.
        While the connection is held (during ``on_connect``, whose frames such as
        ``connected`` must come first), frames wait, up to the limit given to
        :meth:`hold`, beyond which the connection is closed as a slow consumer.
        """
        if self.closed:
            return False
        held = self._held
        if held is None:
            return self._sink.send_frame(frame)
        if len(held) >= self._hold_limit:  # as the send queue's bound: a slow consumer
            self._held = None
            metrics.limit_closed("slow_consumer")
            self._close_now(CloseCode.TRY_AGAIN_LATER, "slow consumer")
            return False
        held.append(frame)
        return True

    def hold(self, limit: int) -> None:
        """Hold hub deliveries (up to ``limit``, then 1013) until :meth:`release`."""
        self._held = []
        self._hold_limit = limit

    def release(self) -> None:
        """Send the held deliveries, in order, and stop holding."""
        held, self._held = self._held, None
        for frame in held or ():
            if self.closed or not self._sink.send_frame(frame):
                return

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close with ``code`` after what is queued; later calls do nothing. Never blocks."""
        self.expire_at(None)
        self._close_now(code, reason)

    def _close_now(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        self._sink.close_now(code, clip_reason(reason))

    def gone(self, code: int | None) -> None:
        """The peer or the server ended the connection (the receive loop saw it)."""
        self.expire_at(None)
        if not self.closed:
            self.closed = True
            self.close_code = code

    def expire_at(self, deadline: float | None) -> None:
        """Close with 4401 at ``deadline`` (Unix time); None disarms. Re-arming replaces."""
        if self.deadline_key is None and deadline is None:
            return
        loop = asyncio.get_running_loop()
        if deadline is None or self.closed:
            deadlines.get(loop).set(self, None)
            return
        delay = max(0.0, deadline - time.time())
        deadlines.get(loop).set(self, loop.time() + delay)

    def deadline_passed(self) -> None:
        spawn(self.close(CloseCode.TOKEN_EXPIRED, "token expired"))

    def __repr__(self) -> str:
        return f"<Connection {self.id} user={self.user_id} route={self.route}>"
