"""Brokers connect the hubs of several server processes; chosen by ``WSGEN_BROKER_URL``."""

from __future__ import annotations

from dataclasses import dataclass

from core.brokers.base import Broker, Presence, UserSessions
from core.errors import ConfigError


@dataclass(slots=True, frozen=True)
class Backend:
    """A broker and the shared-state capabilities that come with it."""

    broker: Broker
    presence: Presence
    sessions: UserSessions
    shared: bool  # True when several processes can share it


def backend_from_url(url: str) -> Backend:
    """``memory://`` (default, one process); other schemes come with their backends.

    Backends are imported lazily, so ``redis`` is only needed when it is used.
    """
    scheme = url.partition("://")[0]
    if scheme == "memory":
        from core.brokers.memory import MemoryBroker, MemoryBus, MemoryPresence, MemoryUserSessions

        bus = MemoryBus()
        return Backend(MemoryBroker(bus), MemoryPresence(bus), MemoryUserSessions(bus), False)
    raise ConfigError(f"WSGEN_BROKER_URL: unsupported scheme {scheme!r}; use memory://")


__all__ = ["Backend", "Broker", "Presence", "UserSessions", "backend_from_url"]
