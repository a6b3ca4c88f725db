"""The connection hub: who is connected, and delivery to users and channels.

Users: connections tracked with :meth:`Hub.track_user` (``/ws/user``) receive
:meth:`Hub.send_to_user`; at most ``limit`` per user, the oldest closed with 4409.
Channels: ``<namespace>/<id>`` (``chat-rooms/…``, ``consultations/…``); a
:meth:`Hub.broadcast` reaches every connection in the channel except the sender's
connection (echo prevention by connection id, so the sender's other tabs do get it).

Every delivery is encoded and framed once, queued on this process's connections
without waiting on any socket, and, when the backend is shared by several
processes, published to the broker for the others, which deliver it to theirs.
The hub never imports Starlette: it talks to :class:`~core.connection.Connection`.

Local bookkeeping changes synchronously; the broker subscription of a topic is then
reconciled with it (subscribed exactly while the topic has local connections, however
joins and leaves interleave). A broker outage never fails a caller: publishing is
logged and counted, and a bad or failing message from the broker is logged and dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from time import monotonic, perf_counter
from typing import Any

import orjson

from core import metrics
from core.brokers import Backend
from core.clock import now_iso
from core.close_codes import CloseCode
from core.connection import Connection
from core.envelope import encode
from core.errors import BrokerUnavailable
from core.frames import OutFrame
from core.logging import get_logger

log = get_logger("wsgen.hub")

USER_TOPIC = "u:"
CHANNEL_TOPIC = "c:"


@dataclass(slots=True, frozen=True)
class Joined:
    """The result of joining a channel."""

    first: bool  # the user's first connection in the channel (announce them)
    online: list[str]  # user ids in the channel now, the joining user included


class Hub:
    def __init__(self, backend: Backend, node_id: str | None = None) -> None:
        self.backend = backend
        self.node_id = node_id or backend.node_id
        # topic -> connection id -> connection, for this process's connections only.
        self._local: dict[str, dict[str, Connection]] = {}
        # Topics the broker delivers to this process, and those being (un)subscribed.
        self._subscribed: set[str] = set()
        self._syncing: set[str] = set()
        self._last_broker_warning = 0.0
        # How many close requests (this process's, or another's) the hub has handled:
        # a change tells that connections may have been closed since an earlier look.
        self.closes = 0

    async def start(self) -> None:
        self.backend.presence.watch(self._departed)
        await self.backend.broker.start(self._receive)

    async def _departed(self, channel: str, user_id: str) -> None:
        """A user's last connection to ``channel`` died with its process: announce it.

        Only one process of the deployment calls this per departure.
        """
        await self.announce_left(channel, user_id)

    async def announce_left(self, channel: str, user_id: str) -> None:
        """``user.left`` to the channel: the user's last connection to it is gone."""
        await self.broadcast(channel, "user.left", {"userId": user_id, "timestamp": now_iso()})

    async def stop(self) -> None:
        await self.backend.broker.stop()

    # -- tracking ---------------------------------------------------------------

    async def track_user(self, conn: Connection, limit: int) -> None:
        """Make ``conn`` receive ``send_to_user``; close the user's oldest beyond ``limit``."""
        user_id = _user_of(conn)
        await self._add(USER_TOPIC + user_id, conn)
        ids = await self.backend.sessions.add(user_id, conn.id)
        if conn.closed:  # it went away meanwhile: do not let it evict anyone
            return
        if len(ids) > limit:
            await self._close(
                USER_TOPIC + user_id,
                ids[: len(ids) - limit],
                None,
                CloseCode.REPLACED,
                "replaced by a newer connection",
            )

    async def join(self, channel: str, conn: Connection) -> Joined:
        """Subscribe ``conn`` to ``channel`` and record its presence there."""
        user_id = _user_of(conn)
        await self._add(CHANNEL_TOPIC + channel, conn)
        first = await self.backend.presence.join(channel, conn.id, user_id)
        return Joined(first, await self.backend.presence.members(channel))

    async def leave(self, channel: str, conn: Connection) -> bool:
        """Unsubscribe ``conn``; True when the user has no connection left in ``channel``."""
        if not await self._remove(CHANNEL_TOPIC + channel, conn):
            return False
        return await self.backend.presence.leave(channel, conn.id, _user_of(conn))

    async def discard(self, conn: Connection) -> None:
        """Forget ``conn`` everywhere; the runtime calls it after ``on_close``. Never raises."""
        for topic in tuple(conn.topics):
            try:
                if topic.startswith(CHANNEL_TOPIC):
                    await self.leave(topic[len(CHANNEL_TOPIC) :], conn)
                elif await self._remove(topic, conn):
                    await self.backend.sessions.remove(_user_of(conn), conn.id)
            except Exception:
                conn.topics.discard(topic)
                self._drop_local(topic, conn)
                log.exception("hub clean-up failed", connection_id=conn.id)

    async def online(self, channel: str) -> list[str]:
        """The user ids connected to ``channel`` on any process."""
        return await self.backend.presence.members(channel)

    # -- delivery ---------------------------------------------------------------

    async def send_to_user(self, user_id: str, event: str, payload: Any) -> None:
        """Deliver to every ``/ws/user`` connection of ``user_id``, on every process."""
        await self._deliver(USER_TOPIC + user_id, event, encode(event, payload), None, None)

    async def broadcast(
        self,
        channel: str,
        event: str,
        payload: Any,
        *,
        exclude: str | None = None,
        to_user: str | None = None,
    ) -> None:
        """Deliver to the channel's connections, except connection id ``exclude``.

        With ``to_user``, only that user's connections in the channel get it.
        """
        await self._deliver(
            CHANNEL_TOPIC + channel, event, encode(event, payload), exclude, to_user
        )

    async def close_user_in_channel(
        self, channel: str, user_id: str, code: int, reason: str
    ) -> None:
        """Close ``user_id``'s connections to ``channel`` on every process."""
        await self._close(CHANNEL_TOPIC + channel, None, user_id, code, reason)

    # -- internals --------------------------------------------------------------

    async def _add(self, topic: str, conn: Connection) -> None:
        self._local.setdefault(topic, {})[conn.id] = conn
        conn.topics.add(topic)
        await self._sync_subscription(topic)

    async def _remove(self, topic: str, conn: Connection) -> bool:
        conn.topics.discard(topic)
        if not self._drop_local(topic, conn):
            return False
        await self._sync_subscription(topic)
        return True

    def _drop_local(self, topic: str, conn: Connection) -> bool:
        members = self._local.get(topic)
        if members is None or members.pop(conn.id, None) is None:
            return False
        if not members:
            del self._local[topic]
        return True

    async def _sync_subscription(self, topic: str) -> None:
        """Make the broker subscription of ``topic`` match whether it has local members.

        The bookkeeping above changes synchronously; only this awaits. Joins and
        leaves of one topic may interleave across the await, so whoever is syncing
        re-checks afterwards, and a concurrent caller leaves it to them: the final
        subscription always matches the final membership.
        """
        if topic in self._syncing:
            return
        self._syncing.add(topic)
        try:
            while (wanted := topic in self._local) != (topic in self._subscribed):
                if wanted:
                    await self.backend.broker.subscribe(topic)
                    self._subscribed.add(topic)
                else:
                    await self.backend.broker.unsubscribe(topic)
                    self._subscribed.discard(topic)
        finally:
            self._syncing.discard(topic)

    async def _deliver(
        self, topic: str, event: str, frame: OutFrame, exclude: str | None, to_user: str | None
    ) -> None:
        local = self._local.get(topic)
        if local:
            started = perf_counter()
            sent = _send_all(local.values(), frame, exclude, to_user)
            metrics.BROADCAST_FANOUT_SECONDS.observe(perf_counter() - started)
            metrics.sent(event).inc(sent)
        if self.backend.shared:
            header = {"o": self.node_id, "k": "send", "e": event, "x": exclude, "u": to_user}
            await self._publish(topic, _pack(header, frame.data))

    async def _close(
        self, topic: str, ids: list[str] | None, user_id: str | None, code: int, reason: str
    ) -> None:
        self.closes += 1
        await _close_matching(self._local.get(topic, {}).values(), ids, user_id, code, reason)
        if self.backend.shared:
            header = {
                "o": self.node_id,
                "k": "close",
                "ids": ids,
                "u": user_id,
                "c": code,
                "r": reason,
            }
            await self._publish(topic, _pack(header, b""))

    async def _publish(self, topic: str, data: bytes) -> None:
        """Publish for the other processes; a broker outage is logged and counted, not raised.

        Local delivery has happened already, and chat messages are stored first, so
        what the other processes miss meanwhile can be read from history.
        """
        try:
            await self.backend.broker.publish(topic, data)
        except BrokerUnavailable as exc:
            metrics.BROKER_ERRORS.labels("publish").inc()
            now = monotonic()
            if now - self._last_broker_warning >= 1.0:  # at most one line a second
                self._last_broker_warning = now
                log.warning(
                    "publish to other processes failed; delivered locally only", error=str(exc)
                )

    async def _receive(self, topic: str, data: bytes) -> None:
        """A message from another process: deliver it to this process's connections.

        Nothing raised here reaches the broker's listener: a bad message is logged
        and dropped.
        """
        try:
            raw_header, _, body = data.partition(b"\n")
            header = orjson.loads(raw_header)
            if header["o"] == self.node_id:
                return
            local = self._local.get(topic, {}).values()
            if header["k"] == "send":
                sent = _send_all(local, OutFrame(body), header["x"], header["u"])
                metrics.sent(str(header.get("e", metrics.UNKNOWN))).inc(sent)
            elif header["k"] == "close":
                self.closes += 1
                await _close_matching(local, header["ids"], header["u"], header["c"], header["r"])
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            log.error("broker message dropped: not a hub message", topic=topic, size=len(data))
        except Exception:
            log.exception("broker message dropped: delivery failed", topic=topic, size=len(data))


def _pack(header: dict[str, Any], body: bytes) -> bytes:
    """A broker message: one JSON header line, then the frame's bytes as they are."""
    return orjson.dumps(header) + b"\n" + body


def _send_all(
    conns: Iterable[Connection], frame: OutFrame, exclude: str | None, to_user: str | None
) -> int:
    """Queue ``frame`` on the matching connections; how many took it. Never awaits."""
    sent = 0
    for conn in conns:
        if conn.id != exclude and (to_user is None or conn.user_id == to_user):
            sent += conn.write(frame)
    return sent


async def _close_matching(
    conns: Iterable[Connection],
    ids: list[str] | None,
    user_id: str | None,
    code: int,
    reason: str,
) -> None:
    wanted = None if ids is None else set(ids)
    for conn in tuple(conns):
        if (wanted is None or conn.id in wanted) and (user_id is None or conn.user_id == user_id):
            await conn.close(code, reason)


def _user_of(conn: Connection) -> str:
    if conn.user_id is None:
        raise ValueError("only authenticated connections can be tracked; add auth_middleware()")
    return conn.user_id
