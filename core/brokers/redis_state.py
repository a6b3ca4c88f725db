"""Presence and user sessions in Redis, shared by every server process, safe under SIGKILL.

Design (one idea: an entry counts only while the process that wrote it is alive):

- **Node liveness.** Every process (node) has a random id and keeps its score in the
  sorted set ``wsgen:nodes`` = the time until which it counts as alive (Redis server
  time, microseconds, so the hosts' clocks do not matter). A heartbeat moves it to
  ``now + ttl`` every ``ttl / 3`` seconds (``WSGEN_PRESENCE_TTL``, default 15 s).
- **Entries are tagged by node.** Presence of a channel is the sorted set
  ``wsgen:presence:<channel>`` with members ``"<node> <connection> <user>"``; a user's
  ``/ws/user`` sessions are ``wsgen:sessions:<user>`` with members
  ``"<node> <connection>"``. The score is the arrival time, so ``members`` lists users
  in the order they arrived and ``sessions.add`` returns connections oldest first.
- **Reads ignore, and delete, entries of dead nodes.** Every operation is one Lua
  script (atomic) that first drops the entries whose node's score is missing or in the
  past. A process killed with SIGKILL stops its heartbeat; within ``ttl`` its members
  are gone from ``online`` and its connections no longer count against the 4409 limit.
- **Departures are announced once.** The script that drops a user's last entry in a
  channel queues ``"<channel>\n<user>"`` on the list ``wsgen:departures``; every
  node's heartbeat pops that list (atomically, so one node gets each item) and hands
  it to ``on_departed``, with which the hub broadcasts ``user.left``.
- **Dead nodes are reaped.** Each node remembers the keys it wrote to in
  ``wsgen:node:<id>:keys``; a heartbeat that finds another node's score in the past
  removes that node and prunes those keys (atomically: one reaper wins), so a channel
  nobody visits again keeps no garbage.
- **This process's own entries are mirrored in memory**, which is the truth for them.
  While Redis cannot be reached, operations answer from this process's view (only its
  own connections), count a ``wsgen_broker_errors_total`` and mark the node dirty. When
  the heartbeat reaches Redis again, or finds that Redis lost the node (a restart
  without persistence, or this node was reaped after a long pause), it re-asserts
  every mirrored entry and applies the removals that failed meanwhile.

Guarantees: ``online`` and the 4409 ordering are exact while Redis is up and every
node beats; a crashed node's entries count for at most ``ttl`` more seconds, and its
users' ``user.left`` follows within about one more heartbeat. A node that stalls for
longer than ``ttl`` is taken for dead (its users are announced as gone) and re-asserts
its entries when it beats again. Needs Redis 6.2+ (Lua with ``TIME``, ``LPOP`` with a
count); a single Redis (or a Sentinel-managed primary), not Redis Cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core import metrics
from core.brokers import redis_scripts as lua
from core.errors import BrokerUnavailable
from core.logging import get_logger
from core.tasks import cancel

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

    from core.brokers.base import Presence, UserSessions

log = get_logger("wsgen.broker")

PREFIX = "wsgen:"
NODES = PREFIX + "nodes"
DEPARTURES = PREFIX + "departures"
PRESENCE = PREFIX + "presence:"

_FAILURES = (RedisError, OSError)
Departed = Callable[[str, str], Awaitable[None]]
"""Called with (channel, user id) when a user's last connection died with its process."""


def presence_key(channel: str) -> str:
    return PRESENCE + channel


def sessions_key(user_id: str) -> str:
    return f"{PREFIX}sessions:{user_id}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisNode:
    """This process in Redis: its heartbeat, its mirrored entries, and the scripts.

    Args:
        client: a ``redis.asyncio.Redis`` for commands (bytes responses).
        node_id: this process's id (the hub's ``node_id``); no spaces.
        ttl: seconds an entry outlives the last heartbeat of its process.
    """

    def __init__(self, client: Redis, node_id: str, ttl: float = 15.0) -> None:
        self.client = client
        self.node_id = node_id
        self.ttl = ttl
        self.interval = ttl / 3
        self.keys_key = f"{PREFIX}node:{node_id}:keys"
        self.up = False
        # key -> members of this node (the truth for them), in arrival order
        self._entries: dict[str, dict[str, None]] = {}
        # key -> members whose removal did not reach Redis
        self._removals: dict[str, set[str]] = {}
        self._dirty = False
        self._syncing = False
        self._reported = False  # an outage was logged; log the recovery once
        self.on_departed: Departed | None = None
        self._task: asyncio.Task[None] | None = None

        def script(body: str) -> AsyncScript:
            return client.register_script(lua.PRELUDE + body)

        self.join = script(lua.JOIN)
        self.leave = script(lua.LEAVE)
        self.members = script(lua.MEMBERS)
        self.sessions_add = script(lua.SESSIONS_ADD)
        self.drop = script(lua.DROP)
        self._assert = script(lua.ASSERT)
        self._heartbeat = script(lua.HEARTBEAT)
        self._reap = script(lua.REAP)
        self._prune = script(lua.PRUNE)

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Beat once (so ``up`` is known), then keep beating in the background."""
        await self._beat_logged()
        self._task = asyncio.create_task(self._run(), name=f"wsgen-heartbeat-{self.node_id}")

    async def stop(self) -> None:
        """Stop beating and remove this node's entries from Redis (best effort)."""
        if self._task is not None:
            await cancel(self._task)
            self._task = None
        if self.up:
            with contextlib.suppress(*_FAILURES):
                await self._reap_node(self.node_id, force=True)
        self.up = False

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval if self.up else min(1.0, self.interval))
            await self._beat_logged()

    async def _beat_logged(self) -> None:
        try:
            await self._beat()
        except _FAILURES as exc:
            if not self._reported:
                self._reported = True
                log.warning(
                    "broker unreachable: presence and sessions answer from this process "
                    "until it is back",
                    error=type(exc).__name__,
                )
            self.up = False
            metrics.BROKER_ERRORS.labels("heartbeat").inc()
        except Exception:
            # A bug, not an outage: log it and keep beating (the loop must survive).
            self._dirty = True
            log.exception("heartbeat failed")

    async def _beat(self) -> None:
        ttl_us = str(round(self.ttl * 1_000_000))
        added, dead = await self._heartbeat(keys=[NODES], args=[self.node_id, ttl_us])
        if self._reported:
            self._reported = False
            log.info("broker reachable: presence and sessions shared again", node=self.node_id)
        if added or self._dirty or not self.up:
            await self._resync()
        self.up = True
        for node in dead:
            node_id = _text(node)
            if node_id != self.node_id:
                await self._reap_node(node_id, force=False)
        await self._announce_departures()

    async def _announce_departures(self) -> None:
        """Hand the users whose last connection died with its process to ``on_departed``.

        Any node's scripts queue them; whichever node pops one announces it (once).
        """
        while batch := await self.client.lpop(DEPARTURES, 100):  # type: ignore[misc]
            for item in batch:
                channel, _, user_id = _text(item).partition("\n")
                if self.on_departed is None:
                    continue
                try:
                    await self.on_departed(channel, user_id)
                except Exception:
                    log.exception("announcing a departure failed", channel=channel)

    async def _resync(self) -> None:
        """Write this node's mirrored entries and pending removals to Redis.

        Operations during a resync answer locally and mark the node dirty, so the
        loop runs again with a fresh snapshot: Redis never ends up behind the mirror.
        """
        self._syncing = True
        try:
            for _ in range(5):
                self._dirty = False
                for key, members in list(self._entries.items()):
                    if members:
                        await self._assert(keys=[key, self.keys_key], args=list(members))
                removals, self._removals = self._removals, {}
                for key, gone in removals.items():
                    try:
                        await self.drop(keys=self._keys(key), args=[self.node_id, *gone, PRESENCE])
                    except BaseException:
                        self._removals.setdefault(key, set()).update(gone)
                        raise
                if not self._dirty:
                    return
            self._dirty = True  # still changing: the next heartbeat goes on
        finally:
            self._syncing = False

    async def _reap_node(self, node_id: str, *, force: bool) -> None:
        keys_key = f"{PREFIX}node:{node_id}:keys"
        keys = await self._reap(keys=[NODES, keys_key], args=[node_id, "force" if force else ""])
        if keys is None:
            return
        for key in keys:
            await self._prune(keys=self._keys(key), args=[PRESENCE])
        if not force:
            log.info("reaped a dead server process", node=node_id, keys=len(keys))

    # -- the mirror and calls ------------------------------------------------------

    def remember(self, key: str, member: str) -> None:
        self._entries.setdefault(key, {})[member] = None

    def forget(self, key: str, member: str) -> None:
        members = self._entries.get(key)
        if members is not None:
            members.pop(member, None)
            if not members:
                del self._entries[key]

    def mine(self, key: str) -> list[str]:
        """This node's members of ``key``, in arrival order."""
        return list(self._entries.get(key, ()))

    def failed_removal(self, key: str, member: str) -> None:
        self._removals.setdefault(key, set()).add(member)

    def _keys(self, key: str) -> list[str]:
        """The keys of a script that prunes ``key`` (see ``redis_scripts``)."""
        return [key, NODES, self.keys_key, DEPARTURES]

    async def call(self, operation: str, script: AsyncScript, key: str, args: list[str]) -> Any:
        """Run a pruning ``script`` on ``key``, or raise ``BrokerUnavailable`` while Redis is down.

        A failure marks the node down and dirty, so the heartbeat re-asserts the mirror.
        """
        if not self.up or self._syncing:
            self._dirty = True
            raise BrokerUnavailable(f"broker unavailable during {operation}")
        try:
            return await script(keys=self._keys(key), args=[*args, PRESENCE])
        except _FAILURES as exc:
            self._dirty = True
            self.up = False
            metrics.BROKER_ERRORS.labels(operation).inc()
            log.warning("broker operation failed", operation=operation, error=type(exc).__name__)
            raise BrokerUnavailable(
                f"broker unavailable during {operation} ({type(exc).__name__})"
            ) from exc


class RedisPresence:
    """Who is in a channel over all processes; see the module docstring."""

    def __init__(self, node: RedisNode) -> None:
        self.node = node

    def watch(self, on_departed: Departed) -> None:
        self.node.on_departed = on_departed

    def _member(self, connection_id: str, user_id: str) -> str:
        return f"{self.node.node_id} {connection_id} {user_id}"

    async def join(self, channel: str, connection_id: str, user_id: str) -> bool:
        node, key = self.node, presence_key(channel)
        member = self._member(connection_id, user_id)
        others = [m for m in node.mine(key) if m.split(" ", 2)[2] == user_id]
        node.remember(key, member)
        try:
            first = await node.call("presence", node.join, key, [member, user_id])
        except BrokerUnavailable:
            return not others
        return bool(first)

    async def leave(self, channel: str, connection_id: str, user_id: str) -> bool:
        node, key = self.node, presence_key(channel)
        member = self._member(connection_id, user_id)
        node.forget(key, member)
        try:
            last = await node.call("presence", node.leave, key, [member, user_id, node.node_id])
        except BrokerUnavailable:
            node.failed_removal(key, member)
            return all(m.split(" ", 2)[2] != user_id for m in node.mine(key))
        return bool(last)

    async def members(self, channel: str) -> list[str]:
        node, key = self.node, presence_key(channel)
        try:
            users = await node.call("presence", node.members, key, [])
        except BrokerUnavailable:
            return list(dict.fromkeys(m.split(" ", 2)[2] for m in node.mine(key)))
        return [_text(user) for user in users]


class RedisUserSessions:
    """A user's ``/ws/user`` connections over all processes, oldest first."""

    def __init__(self, node: RedisNode) -> None:
        self.node = node

    async def add(self, user_id: str, connection_id: str) -> list[str]:
        node, key = self.node, sessions_key(user_id)
        member = f"{node.node_id} {connection_id}"
        node.remember(key, member)
        try:
            ids = await node.call("sessions", node.sessions_add, key, [member])
        except BrokerUnavailable:
            return [m.split(" ", 1)[1] for m in node.mine(key)]
        return [_text(i) for i in ids]

    async def remove(self, user_id: str, connection_id: str) -> None:
        node, key = self.node, sessions_key(user_id)
        member = f"{node.node_id} {connection_id}"
        node.forget(key, member)
        try:
            await node.call("sessions", node.drop, key, [node.node_id, member])
        except BrokerUnavailable:
            node.failed_removal(key, member)


if TYPE_CHECKING:
    _presence: Presence = RedisPresence(RedisNode(Redis(), "n"))
    _sessions: UserSessions = RedisUserSessions(RedisNode(Redis(), "n"))
