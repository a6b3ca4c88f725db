"""The Redis broker: pub/sub between the server processes of a deployment.

Chosen with ``WSGEN_BROKER_URL=redis://[:password@]host:port/db`` (``rediss://`` for
TLS). Topics are Redis pub/sub channels named ``wsgen:<topic>``.

- **One subscriber connection per process**, read by one listener task. When it
  breaks (Redis restarted, network cut) the listener logs it once, reconnects with
  a capped exponential backoff, and subscribes again to every topic the hub wants
  (its own set is the truth, so topics added or dropped meanwhile are right too).
  A message that fails to be handled is logged and dropped; the listener goes on.
- **Publishing** uses the shared command client (a connection pool). When Redis
  cannot be reached it raises ``BrokerUnavailable`` quickly (one retry, short
  timeouts); the hub logs and counts it, and has delivered locally already.
- **A silent subscriber is suspect**: a connection can die without an error (a
  network cut drops packets, nothing resets it). After :data:`PROBE_AFTER` seconds
  without a message the listener publishes a probe to its own control channel; with
  nothing at all for :data:`SILENCE_MAX` seconds it reconnects.
- **Readiness** (``ping``) fails while the subscriber is disconnected or Redis does
  not answer ``PING``.
- Delivery is at most once, in publish order per publishing process (the base
  contract); a message published while a process is disconnected is lost for it.

Presence and user sessions live in ``core.brokers.redis_state``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from core import metrics
from core.brokers.base import Receiver
from core.brokers.redis_state import PREFIX, RedisNode
from core.errors import BrokerUnavailable, ConfigError
from core.logging import get_logger
from core.tasks import cancel, spawn

if TYPE_CHECKING:
    from core.brokers.base import Broker

log = get_logger("wsgen.broker")

_FAILURES = (RedisError, OSError)
BACKOFF_MAX = 5.0
"""Seconds between reconnection attempts of the subscriber, at most."""
PROBE_AFTER = 5.0
"""Seconds of silence after which the subscriber publishes a probe to itself."""
SILENCE_MAX = 15.0
"""Seconds without any message, not even its own probe, before the subscriber reconnects."""


def redis_clients(url: str) -> tuple[Redis, Redis]:
    """The command client (pool) and the subscriber's client for a ``redis://`` URL.

    Commands fail fast while Redis is away: a short connect timeout and one retry
    (a pooled connection may be stale after a Redis restart). The subscriber reads
    without a socket timeout (a quiet channel is normal) and does not retry by
    itself: the listener handles reconnection, so that it is logged.

    Raises:
        ConfigError: a malformed URL (the message never repeats it: it may hold a password).
    """
    common: dict[str, Any] = {
        "socket_connect_timeout": 2.0,
        "socket_keepalive": True,
        "health_check_interval": 10,
    }
    try:
        commands = Redis.from_url(
            url,
            socket_timeout=5.0,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),
            **common,
        )
        subscriber = Redis.from_url(url, retry=Retry(NoBackoff(), 0), **common)
    except ValueError:
        raise ConfigError(
            "WSGEN_BROKER_URL is not a Redis URL; e.g. redis://localhost:6379/0"
        ) from None
    return commands, subscriber


class RedisBroker:
    """A ``Broker`` on Redis pub/sub; it also runs this process's ``RedisNode`` heartbeat."""

    def __init__(self, commands: Redis, subscriber: Redis, node: RedisNode) -> None:
        self._commands = commands
        self._subscriber = subscriber
        self.node = node
        self._topics: set[str] = set()
        self._pubsub: PubSub | None = None
        self._receiver: Receiver | None = None
        self._listener: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one (re)subscription at a time
        self.connected = False
        self.reconnections = 0
        self.probe_after, self.silence_max = PROBE_AFTER, SILENCE_MAX
        self._control = f"{PREFIX}node:{node.node_id}"

    async def start(self, receiver: Receiver) -> None:
        self._receiver = receiver
        await self.node.start()
        ready = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(ready.set), name="wsgen-redis-listener")
        # Wait for the first connection briefly; when Redis is away the server still
        # starts (not ready) and the listener keeps trying.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3.0):
                await ready.wait()

    async def stop(self) -> None:
        if self._listener is not None:
            await cancel(self._listener)
            self._listener = None
        await self._close_pubsub()
        await self.node.stop()
        self._receiver = None
        await self._subscriber.aclose()
        await self._commands.aclose()

    async def publish(self, topic: str, data: bytes) -> None:
        try:
            await self._commands.publish(PREFIX + topic, data)
        except _FAILURES as exc:
            raise BrokerUnavailable(
                f"broker unavailable during publish ({type(exc).__name__})"
            ) from exc

    async def subscribe(self, topic: str) -> None:
        """Add ``topic``; sent now when connected, else on the next (re)connection."""
        self._topics.add(topic)
        await self._send("subscribe", topic)

    async def unsubscribe(self, topic: str) -> None:
        self._topics.discard(topic)
        await self._send("unsubscribe", topic)

    async def ping(self) -> None:
        if not self.connected:
            raise BrokerUnavailable("broker subscriber is reconnecting")
        try:
            await cast(Awaitable[bool], self._commands.ping())
        except _FAILURES as exc:
            raise BrokerUnavailable(f"broker unavailable ({type(exc).__name__})") from exc

    # -- the subscriber -----------------------------------------------------------

    async def _send(self, command: str, topic: str) -> None:
        async with self._lock:
            pubsub = self._pubsub
            if pubsub is None or not self.connected:
                return  # the listener subscribes to self._topics when it reconnects
            try:
                if command == "subscribe":
                    await pubsub.subscribe(PREFIX + topic)
                else:
                    await pubsub.unsubscribe(PREFIX + topic)
            except _FAILURES:
                pass  # the listener sees the broken connection and resubscribes

    async def _connect(self) -> PubSub:
        async with self._lock:
            pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
            try:
                # The control channel keeps the connection subscribed (and health-checked).
                await pubsub.subscribe(self._control, *(PREFIX + t for t in self._topics))
            except BaseException:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                raise
            self._pubsub = pubsub
            self.connected = True
            metrics.BROKER_CONNECTED.set(1)
            return pubsub

    async def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        self.connected = False
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _listen(self, on_connected: Callable[[], None]) -> None:
        """Receive forever; reconnect with backoff, never die of one message."""
        backoff, failures, connected_once = 0.1, 0, False
        while True:
            try:
                pubsub = await self._connect()
                if connected_once:
                    log.info("broker reconnected; subscriptions restored", topics=len(self._topics))
                else:
                    log.info("broker connected", node=self.node.node_id)
                connected_once = True
                on_connected()
                backoff, failures = 0.1, 0
                await self._receive(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._close_pubsub()
                metrics.BROKER_CONNECTED.set(0)
                if not isinstance(exc, _FAILURES):
                    log.error("broker listener failed; reconnecting", exc_info=exc)
                elif failures == 0:
                    log.error(
                        "broker connection lost; reconnecting (cross-process delivery paused)"
                        if connected_once
                        else "broker unreachable; retrying (cross-process delivery paused)",
                        error=type(exc).__name__,
                    )
                failures += 1
                self.reconnections += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    async def _receive(self, pubsub: PubSub) -> None:
        """Hand messages over until the connection fails or stays silent too long."""
        last_seen = probed = time.monotonic()
        while True:
            message = await pubsub.get_message(timeout=min(1.0, self.probe_after))
            now = time.monotonic()
            if message is not None:
                last_seen = now
                if message.get("type") == "message":
                    await self._deliver(message)
                continue
            if now - last_seen > self.silence_max:
                raise RedisConnectionError("the subscriber heard nothing, not even its probe")
            if now - last_seen > self.probe_after and now - probed > self.probe_after:
                probed = now
                # In a task of its own: a hanging publish must not stop the listener.
                spawn(self._probe())

    async def _probe(self) -> None:
        with contextlib.suppress(*_FAILURES):
            await self._commands.publish(self._control, b"probe")

    async def _deliver(self, message: dict[str, Any]) -> None:
        channel = message.get("channel", b"")
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        if not name.startswith(PREFIX) or name == self._control or self._receiver is None:
            return
        data = message.get("data")
        if not isinstance(data, bytes):
            return
        try:
            await self._receiver(name[len(PREFIX) :], data)
        except Exception:
            log.exception("broker message dropped: its handling failed", size=len(data))


if TYPE_CHECKING:
    _broker: Broker = RedisBroker(Redis(), Redis(), RedisNode(Redis(), "n"))
