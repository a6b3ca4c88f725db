"""The broker contract, on the in-process bus and on a real Redis (SPEC §5, §8).

Two backends stand for two server processes of one deployment: on ``memory`` they
share one ``MemoryBus``, on ``redis`` they are two nodes on the same Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from redis.asyncio.client import PubSub

from core.brokers import Backend, backend_from_url
from core.brokers.memory import MemoryBroker, MemoryBus, MemoryPresence, MemoryUserSessions
from core.brokers.redis import RedisBroker
from core.close_codes import CloseCode
from core.connection import Connection
from core.errors import BrokerUnavailable
from core.frames import OutFrame
from core.hub import Hub
from tests.conftest import eventually
from tests.services import RedisServer

pytestmark = pytest.mark.timeout(30)
TTL = 1.5  # seconds a stopped node's entries still count (Redis)


@dataclass
class Node:
    """One backend and what its broker delivered."""

    backend: Backend
    received: asyncio.Queue[tuple[str, bytes]] = field(default_factory=asyncio.Queue)

    async def receive(self, topic: str, data: bytes) -> None:
        await self.received.put((topic, data))

    async def next(self, timeout: float = 5.0) -> tuple[str, bytes]:
        return await asyncio.wait_for(self.received.get(), timeout)


async def delivered(a: Node, b: Node, data: bytes) -> bool:
    """Does a message published by ``a`` on ``c:room`` reach ``b`` (within 0.2 s)?"""
    await a.backend.broker.publish("c:room", data)
    try:
        return await b.next(0.2) == ("c:room", data)
    except TimeoutError:
        return False


def memory_pair() -> tuple[Backend, Backend]:
    bus = MemoryBus()
    return tuple(  # type: ignore[return-value]
        Backend(MemoryBroker(bus), MemoryPresence(bus), MemoryUserSessions(bus), True)
        for _ in range(2)
    )


@pytest.fixture(params=["memory", "redis"])
async def nodes(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Node, Node]]:
    """Two started backends of one deployment."""
    if request.param == "memory":
        a, b = memory_pair()
    else:
        url = request.getfixturevalue("redis_url")
        a, b = (backend_from_url(url, presence_ttl=TTL) for _ in range(2))
    pair = Node(a), Node(b)
    for node in pair:
        await node.backend.broker.start(node.receive)
    try:
        yield pair
    finally:
        for node in pair:
            await node.backend.broker.stop()


async def test_publish_reaches_the_other_node_in_order(nodes: tuple[Node, Node]) -> None:
    """A subscriber gets a topic's messages in publish order, and none after unsubscribing."""
    a, b = nodes
    await b.backend.broker.subscribe("c:room")
    for i in range(20):
        await a.backend.broker.publish("c:room", b"m%d" % i)
    assert [await b.next() for _ in range(20)] == [("c:room", b"m%d" % i) for i in range(20)]
    await b.backend.broker.unsubscribe("c:room")
    await a.backend.broker.publish("c:room", b"late")
    await b.backend.broker.subscribe("c:other")
    await a.backend.broker.publish("c:other", b"marker")
    assert await b.next() == ("c:other", b"marker")  # "late" never arrived before it


async def test_presence_is_shared_per_user_in_arrival_order(nodes: tuple[Node, Node]) -> None:
    """join/leave report a user's first and last connection over both nodes; members in order."""
    a, b = (n.backend.presence for n in nodes)
    assert await a.join("room", "c1", "alice") is True
    assert await b.join("room", "c2", "bob") is True
    assert await b.join("room", "c3", "alice") is False  # alice is already there, on a
    assert await a.members("room") == await b.members("room") == ["alice", "bob"]
    assert await a.leave("room", "c1", "alice") is False  # still on b
    assert await b.leave("room", "c3", "alice") is True
    assert await a.members("room") == ["bob"]
    assert await b.leave("room", "c2", "bob") is True
    assert await a.members("room") == []


async def test_sessions_are_oldest_first_over_both_nodes(nodes: tuple[Node, Node]) -> None:
    """sessions.add returns the user's connection ids on every node, oldest first."""
    a, b = (n.backend.sessions for n in nodes)
    assert await a.add("alice", "s1") == ["s1"]
    assert await b.add("alice", "s2") == ["s1", "s2"]
    assert await a.add("alice", "s3") == ["s1", "s2", "s3"]
    await b.remove("alice", "s1")  # removing another node's entry is a no-op there
    await a.remove("alice", "s1")
    assert await b.add("bob", "s4") == ["s4"]
    assert await b.add("alice", "s5") == ["s2", "s3", "s5"]


@pytest.fixture
async def redis_nodes(redis_url: str) -> AsyncIterator[tuple[Node, Node]]:
    pair = (
        Node(backend_from_url(redis_url, presence_ttl=TTL)),
        Node(backend_from_url(redis_url, presence_ttl=TTL)),
    )
    for node in pair:
        await node.backend.broker.start(node.receive)
    try:
        yield pair
    finally:
        for node in pair:
            await node.backend.broker.stop()


def crash(node: Node) -> None:
    """Stop a node's heartbeat and listener without any clean-up, as SIGKILL would."""
    broker = node.backend.broker
    assert isinstance(broker, RedisBroker)
    assert broker.node._task is not None and broker._listener is not None
    broker.node._task.cancel()
    broker._listener.cancel()


async def test_a_dead_nodes_entries_expire_and_are_reaped(
    redis_nodes: tuple[Node, Node], redis_server: RedisServer
) -> None:
    """A node that stops beating loses presence and sessions within the TTL; its users depart."""
    a, b = redis_nodes
    departed: list[tuple[str, str]] = []

    async def on_departed(channel: str, user_id: str) -> None:
        departed.append((channel, user_id))

    a.backend.presence.watch(on_departed)
    await a.backend.presence.join("room", "c1", "alice")
    await b.backend.presence.join("room", "c2", "bob")
    await b.backend.presence.join("room", "c3", "alice")  # alice is still on a
    await b.backend.sessions.add("bob", "s1")
    crash(b)
    started = time.monotonic()

    async def bob_gone() -> bool:
        return await a.backend.presence.members("room") == ["alice"]

    await eventually(bob_gone)
    assert time.monotonic() - started < TTL + 1.5
    assert await a.backend.sessions.add("bob", "s2") == ["s2"]  # the dead one does not count

    import redis.asyncio as aioredis

    client = aioredis.Redis(port=redis_server.port)
    try:

        async def reaped() -> bool:
            keys = {k.decode() async for k in client.scan_iter("wsgen:node:*")}
            nodes = {n.decode() for n in await client.zrange("wsgen:nodes", 0, -1)}
            return b.backend.node_id not in nodes and not any(b.backend.node_id in k for k in keys)

        await eventually(reaped)
    finally:
        await client.aclose()

    async def announced() -> bool:
        return departed == [("room", "bob")]

    await eventually(announced)  # once, and not alice, who is still there


async def test_redis_restart_reconnects_and_reasserts_presence(
    redis_nodes: tuple[Node, Node], redis_server: RedisServer
) -> None:
    """After Redis restarts empty, subscriptions, presence and sessions come back by themselves."""
    a, b = redis_nodes
    await b.backend.broker.subscribe("c:room")
    await a.backend.presence.join("room", "c1", "alice")
    await b.backend.sessions.add("bob", "s1")
    redis_server.stop()
    with pytest.raises(BrokerUnavailable):
        await a.backend.broker.publish("c:room", b"lost")

    async def not_ready() -> bool:
        try:
            await b.backend.broker.ping()
        except BrokerUnavailable:
            return True
        return False

    await eventually(not_ready)
    # Meanwhile each node answers from its own connections, and remembers changes.
    assert await a.backend.presence.join("room", "c3", "carol") is True
    assert await a.backend.presence.members("room") == ["alice", "carol"]
    assert await a.backend.presence.leave("room", "c3", "carol") is True
    redis_server.start()

    async def ready() -> bool:
        try:
            await a.backend.broker.ping()
            await b.backend.broker.ping()
        except BrokerUnavailable:
            return False
        return True

    await eventually(ready)

    async def reasserted() -> bool:
        alice = await b.backend.presence.members("room") == ["alice"]
        return alice and await a.backend.sessions.add("bob", "s2") == ["s1", "s2"]

    await eventually(reasserted)

    await eventually(lambda: delivered(a, b, b"back"))


async def test_a_silent_subscriber_reconnects(
    redis_nodes: tuple[Node, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subscriber that hears nothing, not even its own probe, reconnects and resubscribes."""
    a, b = redis_nodes
    broker = b.backend.broker
    assert isinstance(broker, RedisBroker)
    broker.probe_after, broker.silence_max = 0.2, 0.8
    await broker.subscribe("c:room")
    # The next connection goes deaf without any error, as behind a network cut.
    make_pubsub = broker._subscriber.pubsub
    deaf = True

    def pubsub(**kwargs: Any) -> PubSub:
        nonlocal deaf
        created = make_pubsub(**kwargs)
        if deaf:
            deaf = False

            async def nothing(timeout: float | None = 0.0) -> None:
                await asyncio.sleep(timeout or 0)

            monkeypatch.setattr(created, "get_message", nothing)
        return created

    monkeypatch.setattr(broker._subscriber, "pubsub", pubsub)
    await broker._close_pubsub()  # the listener reconnects, onto the deaf connection

    await eventually(lambda: delivered(a, b, b"again"))
    assert broker.reconnections >= 2  # the forced one, then the deaf one


class FakeSink:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.closed: tuple[int, str] | None = None

    def send_frame(self, frame: OutFrame) -> bool:
        self.frames.append(frame.data)
        return True

    def close_now(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    async def stop(self) -> None:
        return None


HOLD_LIMIT = 64


def fake_connection(user: str, *, held: bool = False) -> tuple[Connection, FakeSink]:
    """A connection on a fake sink; ``held``: as during on_connect (up to HOLD_LIMIT)."""
    sink = FakeSink()
    conn = Connection(sink, "/ws/test", user)
    if held:
        conn.hold(HOLD_LIMIT)
    return conn, sink


class SlowBroker(MemoryBroker):
    """Subscribing and unsubscribing take a while, as over a network."""

    async def subscribe(self, topic: str) -> None:
        await asyncio.sleep(0.01)
        await super().subscribe(topic)

    async def unsubscribe(self, topic: str) -> None:
        await asyncio.sleep(0.01)
        await super().unsubscribe(topic)


async def test_concurrent_join_and_leave_leave_the_subscription_right() -> None:
    """Interleaved joins and leaves of one topic end subscribed exactly when it has members."""
    bus = MemoryBus()
    broker = SlowBroker(bus)
    hub = Hub(Backend(broker, MemoryPresence(bus), MemoryUserSessions(bus), True))
    first, _ = fake_connection("alice")
    second, _ = fake_connection("bob")
    await hub.join("room", first)
    # alice leaves while bob joins: the unsubscribe is in flight when bob arrives.
    await asyncio.gather(hub.leave("room", first), hub.join("room", second))
    assert "c:room" in broker._topics
    await asyncio.gather(hub.join("room", first), hub.leave("room", second))
    await hub.leave("room", first)
    assert "c:room" not in broker._topics and hub._subscribed == set()


async def test_a_bad_broker_message_never_stops_the_hub() -> None:
    """Garbage and a failing delivery are logged and dropped; the next message is delivered."""
    a, _ = memory_pair()
    hub = Hub(a)
    conn, sink = fake_connection("alice")
    await hub.join("room", conn)
    await hub._receive("c:room", b"not json")
    await hub._receive("c:room", b'{"o": "other", "k": "close", "ids": 5, "u": null}\n')
    good = {"o": "other", "k": "send", "e": "x", "x": None, "u": None}
    await hub._receive("c:room", orjson.dumps(good) + b"\n" + b'{"event": "x"}')
    assert sink.frames == [b'{"event": "x"}']


class DownBroker(MemoryBroker):
    async def publish(self, topic: str, data: bytes) -> None:
        raise BrokerUnavailable("broker unavailable during publish (ConnectionError)")


async def test_publishing_while_the_broker_is_down_still_delivers_locally() -> None:
    """A broker outage is logged and counted; local connections still get the message."""
    bus = MemoryBus()
    hub = Hub(Backend(DownBroker(bus), MemoryPresence(bus), MemoryUserSessions(bus), True))
    conn, sink = fake_connection("alice")
    await hub.join("room", conn)
    await hub.broadcast("room", "chat.message", {"text": "hi"})
    assert len(sink.frames) == 1


async def test_deliveries_during_on_connect_come_after_its_own_frames() -> None:
    """A held connection (on_connect running) gets hub deliveries after what it sent itself."""
    a, b = memory_pair()
    hub_a, hub_b = Hub(a), Hub(b)
    await hub_a.start()
    await hub_b.start()
    conn, sink = fake_connection("alice", held=True)
    await hub_a.join("room", conn)
    await hub_a.broadcast("room", "user.joined", {"userId": "bob"})  # from this process
    assert sink.frames == []
    await conn.send("connected", {"userId": "alice"})
    conn.release()
    await hub_b.broadcast("room", "chat.typing", {"from": "bob"})  # released: straight out
    assert [orjson.loads(f)["event"] for f in sink.frames] == [
        "connected",
        "user.joined",
        "chat.typing",
    ]


async def test_too_many_held_deliveries_close_the_connection_with_1013() -> None:
    """A connection whose on_connect stalls while deliveries pile up is closed as too slow."""
    conn, sink = fake_connection("alice", held=True)
    frame = OutFrame(b"{}")
    assert all(conn.write(frame) for _ in range(HOLD_LIMIT))
    assert conn.write(frame) is False
    await asyncio.sleep(0)
    assert sink.closed is not None and sink.closed[0] == CloseCode.TRY_AGAIN_LATER
    conn.release()
    assert sink.frames == []
