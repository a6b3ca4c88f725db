"""The in-process broker: the default, for one server process.

Hubs attached to the same :class:`MemoryBus` behave like processes sharing one
Redis, which lets the tests exercise cross-process behaviour in one process.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from core.brokers.base import Receiver

if TYPE_CHECKING:
    from core.brokers.base import Broker, Presence, UserSessions


class MemoryBus:
    """The state one deployment's brokers share: subscriptions, presence, user sessions."""

    def __init__(self) -> None:
        self.subscribers: dict[str, set[MemoryBroker]] = defaultdict(set)
        # channel -> user -> connection ids (dicts keep arrival order)
        self.presence: dict[str, dict[str, dict[str, None]]] = {}
        # user -> connection ids, oldest first
        self.sessions: dict[str, dict[str, None]] = {}


class MemoryBroker:
    """Delivers published messages to the subscribed brokers of the same bus, in order."""

    def __init__(self, bus: MemoryBus | None = None) -> None:
        self.bus = bus or MemoryBus()
        self._receiver: Receiver | None = None
        self._topics: set[str] = set()

    async def start(self, receiver: Receiver) -> None:
        self._receiver = receiver

    async def stop(self) -> None:
        for topic in self._topics:
            self.bus.subscribers[topic].discard(self)
        self._topics.clear()
        self._receiver = None

    async def publish(self, topic: str, data: bytes) -> None:
        """Hand ``data`` to the other brokers of the bus; a hub delivers its own locally."""
        for broker in tuple(self.bus.subscribers.get(topic, ())):
            if broker is not self and broker._receiver is not None:
                await broker._receiver(topic, data)

    async def subscribe(self, topic: str) -> None:
        self._topics.add(topic)
        self.bus.subscribers[topic].add(self)

    async def unsubscribe(self, topic: str) -> None:
        self._topics.discard(topic)
        subscribers = self.bus.subscribers.get(topic)
        if subscribers is not None:
            subscribers.discard(self)
            if not subscribers:
                del self.bus.subscribers[topic]

    async def ping(self) -> None:
        return None


class MemoryPresence:
    def __init__(self, bus: MemoryBus) -> None:
        self.bus = bus

    async def join(self, channel: str, connection_id: str, user_id: str) -> bool:
        users = self.bus.presence.setdefault(channel, {})
        connections = users.setdefault(user_id, {})
        connections[connection_id] = None
        return len(connections) == 1

    async def leave(self, channel: str, connection_id: str, user_id: str) -> bool:
        users = self.bus.presence.get(channel)
        if users is None or user_id not in users:
            return False
        connections = users[user_id]
        if connection_id not in connections:
            return False
        del connections[connection_id]
        if connections:
            return False
        del users[user_id]
        if not users:
            del self.bus.presence[channel]
        return True

    async def members(self, channel: str) -> list[str]:
        return list(self.bus.presence.get(channel, {}))

    def watch(self, on_departed: Callable[[str, str], Awaitable[None]]) -> None:
        """Nothing to watch: connections of one process cannot outlive it."""


class MemoryUserSessions:
    def __init__(self, bus: MemoryBus) -> None:
        self.bus = bus

    async def add(self, user_id: str, connection_id: str) -> list[str]:
        connections = self.bus.sessions.setdefault(user_id, {})
        connections[connection_id] = None
        return list(connections)

    async def remove(self, user_id: str, connection_id: str) -> None:
        connections = self.bus.sessions.get(user_id)
        if connections is not None:
            connections.pop(connection_id, None)
            if not connections:
                del self.bus.sessions[user_id]


if TYPE_CHECKING:
    _broker: Broker = MemoryBroker()
    _presence: Presence = MemoryPresence(MemoryBus())
    _sessions: UserSessions = MemoryUserSessions(MemoryBus())
