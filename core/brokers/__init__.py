"""Brokers connect the hubs of several server processes; chosen by ``WSGEN_BROKER_URL``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from core.brokers.base import Broker, Presence, UserSessions
from core.errors import ConfigError


@dataclass(slots=True, frozen=True)
class Backend:
    """A broker and the shared-state capabilities that come with it."""

    broker: Broker
    presence: Presence
    sessions: UserSessions
    shared: bool  # True when several processes can share it
    node_id: str = field(default_factory=lambda: uuid.uuid4().hex)  # this process


def check_broker_url(url: str) -> None:
    """Raise ``ConfigError`` for a URL :func:`backend_from_url` would refuse; connects nowhere."""
    scheme = url.partition("://")[0]
    if scheme == "memory":
        return
    if scheme in ("redis", "rediss"):
        from core.brokers.redis import redis_clients

        redis_clients(url)  # parses the URL; clients connect on first use only
        return
    raise ConfigError(
        f"WSGEN_BROKER_URL: unsupported scheme {scheme!r}; use memory:// or redis://host:port/db"
    )


def backend_from_url(url: str, *, presence_ttl: float = 15.0) -> Backend:
    """``memory://`` (default, one process) or ``redis://`` / ``rediss://`` (shared).

    Backends are imported lazily, so ``redis`` is only needed when it is used.
    ``presence_ttl``: seconds a crashed process's presence and sessions still count
    (Redis; see ``core.brokers.redis_state``).

    Raises:
        ConfigError: an unsupported scheme or a malformed URL.
    """
    scheme = url.partition("://")[0]
    node_id = uuid.uuid4().hex
    if scheme == "memory":
        from core.brokers.memory import MemoryBroker, MemoryBus, MemoryPresence, MemoryUserSessions

        bus = MemoryBus()
        return Backend(
            MemoryBroker(bus), MemoryPresence(bus), MemoryUserSessions(bus), False, node_id
        )
    if scheme in ("redis", "rediss"):
        from core.brokers.redis import RedisBroker, redis_clients
        from core.brokers.redis_state import RedisNode, RedisPresence, RedisUserSessions

        commands, subscriber = redis_clients(url)
        node = RedisNode(commands, node_id, presence_ttl)
        broker = RedisBroker(commands, subscriber, node)
        return Backend(broker, RedisPresence(node), RedisUserSessions(node), True, node_id)
    check_broker_url(url)
    raise AssertionError("check_broker_url accepts only the schemes above")


__all__ = [
    "Backend",
    "Broker",
    "Presence",
    "UserSessions",
    "backend_from_url",
    "check_broker_url",
]
