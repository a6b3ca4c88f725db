"""The broker contract: how the hub of one process reaches the hubs of the others.

A broker carries opaque bytes on named topics between processes. The hub
publishes every delivery to the broker as well as delivering it locally, and
drops what comes back from its own process (``origin`` in the message), so a
broker never needs to know about connections.

Guarantees every backend gives:

- **At most once**: a message published while a process is unreachable is lost
  for that process. Chat messages are stored before they are published, so a
  client that missed one reads it from history.
- **Per-publisher order**: messages one process publishes on one topic reach each
  subscriber in the order they were published.
- **Outages are survived, not hidden**: ``publish`` raises ``BrokerUnavailable``
  (the hub logs and counts it, having delivered locally); ``subscribe`` and
  ``unsubscribe`` never raise for an outage: the broker keeps the set of topics and
  subscribes again when it reconnects; ``ping`` fails meanwhile (``/readyz``).

Optional capabilities live in separate protocols: :class:`Presence` (who is in a
channel, across processes) and :class:`UserSessions` (a user's connections across
processes, oldest first, for the 4409 replacement).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

Receiver = Callable[[str, bytes], Awaitable[None]]
"""Called with (topic, data) for every message on a subscribed topic."""


class Broker(Protocol):
    async def start(self, receiver: Receiver) -> None:
        """Connect, and from now on hand every message of a subscribed topic to ``receiver``."""

    async def stop(self) -> None:
        """Disconnect; idempotent."""

    async def publish(self, topic: str, data: bytes) -> None:
        """Send ``data`` to every process subscribed to ``topic``.

        Whether the publishing process gets its own message back depends on the
        backend; the hub ignores messages of its own origin either way.

        Raises:
            BrokerUnavailable: the broker cannot be reached; nothing was sent.
        """

    async def subscribe(self, topic: str) -> None:
        """Start receiving ``topic``; the hub calls it once per topic (reference-counted)."""

    async def unsubscribe(self, topic: str) -> None:
        """Stop receiving ``topic``."""

    async def ping(self) -> None:
        """Raise ``BrokerUnavailable`` when the broker cannot be reached (readiness)."""


class Presence(Protocol):
    """Which users are connected to a channel, over all processes.

    Never raises for a broker outage: it then answers from this process's own
    connections and brings the shared state up to date when the broker is back.
    """

    async def join(self, channel: str, connection_id: str, user_id: str) -> bool:
        """Record a connection; True when it is the user's first in the channel."""

    async def leave(self, channel: str, connection_id: str, user_id: str) -> bool:
        """Forget a connection; True when it was the user's last in the channel."""

    async def members(self, channel: str) -> list[str]:
        """The distinct user ids connected to ``channel``, in the order they arrived."""

    def watch(self, on_departed: Callable[[str, str], Awaitable[None]]) -> None:
        """Call ``on_departed(channel, user_id)`` when a user's last connection to a
        channel died with its process (it never left); once per deployment."""


class UserSessions(Protocol):
    """A user's tracked connections over all processes, oldest first.

    Like :class:`Presence`, it answers from this process's view during an outage.
    """

    async def add(self, user_id: str, connection_id: str) -> list[str]:
        """Record a connection; return all of the user's connection ids, oldest first."""

    async def remove(self, user_id: str, connection_id: str) -> None:
        """Forget a connection (a no-op when it was already evicted)."""
