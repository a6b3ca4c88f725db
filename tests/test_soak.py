"""A bounded soak of a real `wsgen serve` process: many clients chatting for minutes.

Opt-in (`make soak`, or `pytest -m soak`); CI runs it after `make test`. Defaults: 500
clients in 100 rooms of 5, each sending a chat message every 2.5 s on average for 120 s
(about 200 stored messages and 800 deliveries per second). Environment overrides for
quicker local runs: WSGEN_SOAK_SECONDS, WSGEN_SOAK_CLIENTS, WSGEN_SOAK_INTERVAL.

Checked: every message a client had acknowledged is stored, once, and nothing else is;
every client received each message of its room (sent by the others) exactly once; no
client ever got an `error`; the server's memory after the clients left is not above its
peak under load and does not grow over a second round; no error in the server's log.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import websockets

from core.testing import bearer
from tests.served import ServerProcess, stored_message_ids, wsgen_serve

SECONDS = float(os.environ.get("WSGEN_SOAK_SECONDS", "120"))
CLIENTS = int(os.environ.get("WSGEN_SOAK_CLIENTS", "500"))
INTERVAL = float(os.environ.get("WSGEN_SOAK_INTERVAL", "2.5"))
ROOM_SIZE = 5
SECOND_ROUND = 15.0  # seconds of the same load again, to see whether memory grows

pytestmark = [pytest.mark.soak, pytest.mark.timeout(SECONDS + SECOND_ROUND + 300)]


@dataclass
class SoakClient:
    """One member: writes at its own pace, reads everything, keeps count."""

    user: str
    room: str
    ws: Any = None
    acked: list[str] = field(default_factory=list)
    received: Counter[str] = field(default_factory=Counter)
    outstanding: dict[str, float] = field(default_factory=dict)
    ack_latency: list[float] = field(default_factory=list)
    delivery_latency: list[float] = field(default_factory=list)
    problems: list[Any] = field(default_factory=list)
    greeted: asyncio.Event = field(default_factory=asyncio.Event)
    sent: int = 0

    async def read(self) -> None:
        first = True
        try:
            async for raw in self.ws:
                frame = orjson.loads(raw)
                event, payload = frame["event"], frame["payload"]
                if first and event != "connected":
                    self.problems.append(("first frame", frame))
                first = False
                if event == "connected":
                    self.greeted.set()
                elif event == "chat.message":
                    self.received[payload["id"]] += 1
                    self.delivery_latency.append(_age(payload["timestamp"]))
                elif event == "ack":
                    started = self.outstanding.pop(payload["ref"])
                    self.ack_latency.append(time.monotonic() - started)
                    self.acked.append(payload["message"]["id"])
                elif event == "error":
                    self.problems.append(frame)
        except websockets.ConnectionClosed as closed:
            if closed.rcvd is None or closed.rcvd.code != 1000:
                self.problems.append(("closed", closed.rcvd))

    async def write(self, until: float, rng: random.Random) -> None:
        await asyncio.sleep(rng.uniform(0, INTERVAL))
        while time.monotonic() < until:
            ref = f"{self.user}-{self.sent}"
            self.sent += 1
            self.outstanding[ref] = time.monotonic()
            message = {"type": "chat.message", "data": {"text": f"soak {ref}"}, "ref": ref}
            await self.ws.send(orjson.dumps(message).decode())
            await asyncio.sleep(rng.uniform(0.5 * INTERVAL, 1.5 * INTERVAL))


def _age(timestamp: str) -> float:
    """Seconds since a server timestamp (same host, same clock)."""
    stamped = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return max(0.0, time.time() - stamped.timestamp())


async def create_rooms(server: ServerProcess, count: int) -> list[str]:
    async with server.api() as api:
        rooms = []
        for r in range(count):
            users = [f"r{r}-u{i}" for i in range(ROOM_SIZE)]
            response = await api.post("/api/internal/chat-rooms", json={"participants": users})
            assert response.status_code == 201, response.text
            rooms.append(response.json()["id"])
        return rooms


async def open_connections(server: ServerProcess) -> float:
    async with server.api() as api:
        text = (await api.get("/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("wsgen_connections_open{")
    )


async def run_round(
    server: ServerProcess, rooms: list[str], seconds: float, rng: random.Random
) -> tuple[list[SoakClient], int]:
    """Connect every client, chat for ``seconds``, settle, leave; the clients and peak RSS."""
    clients = [
        SoakClient(f"r{r}-u{i}", room) for r, room in enumerate(rooms) for i in range(ROOM_SIZE)
    ]
    readers: list[asyncio.Task[None]] = []
    for batch in range(0, len(clients), 50):
        chunk = clients[batch : batch + 50]
        sockets = await asyncio.gather(
            *(
                websockets.connect(
                    server.ws_url(f"/ws/comms/chat-rooms/{c.room}"),
                    additional_headers=bearer(server.token(c.user)),
                    open_timeout=30,
                )
                for c in chunk
            )
        )
        for client, ws in zip(chunk, sockets, strict=True):
            client.ws = ws
            readers.append(asyncio.create_task(client.read()))
    async with asyncio.timeout(60):
        for client in clients:
            await client.greeted.wait()  # connected: subscribed to its room

    rss: list[int] = []
    sampler = asyncio.create_task(sample_rss(server, rss))
    until = time.monotonic() + seconds
    await asyncio.gather(*(c.write(until, rng) for c in clients))
    await settle(clients)
    async with asyncio.timeout(60):
        for batch in range(0, len(clients), 100):
            await asyncio.gather(*(c.ws.close() for c in clients[batch : batch + 100]))
        await asyncio.gather(*readers)
    async with asyncio.timeout(30):
        while await open_connections(server) > 0:
            await asyncio.sleep(0.2)
    sampler.cancel()
    return clients, max(rss)


async def sample_rss(server: ServerProcess, into: list[int]) -> None:
    """The server's RSS twice a second, from load to the last departure."""
    while True:
        into.append(server.rss_kib())
        await asyncio.sleep(0.5)


async def settle(clients: list[SoakClient]) -> None:
    """Wait until every ack came back and every member received every room message."""
    by_room: dict[str, list[SoakClient]] = {}
    for client in clients:
        by_room.setdefault(client.room, []).append(client)
    async with asyncio.timeout(60):
        while any(c.outstanding for c in clients):
            await asyncio.sleep(0.1)
        for members in by_room.values():
            for client in members:
                expected = {m for o in members if o is not client for m in o.acked}
                while not expected <= set(client.received):
                    await asyncio.sleep(0.1)


def check_round(clients: list[SoakClient]) -> set[str]:
    """Exactly-once delivery within each room; every acked id."""
    by_room: dict[str, list[SoakClient]] = {}
    for client in clients:
        by_room.setdefault(client.room, []).append(client)
        assert not client.problems, (client.user, client.problems[:5])
        assert len(client.acked) == client.sent
    acked: list[str] = [m for c in clients for m in c.acked]
    assert len(acked) == len(set(acked))
    for members in by_room.values():
        for client in members:
            expected = Counter(m for o in members if o is not client for m in o.acked)
            assert client.received == expected, client.user  # each once, none foreign
    return set(acked)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else 0.0


async def test_soak(tmp_path: Path) -> None:
    """Clients chatting for minutes: nothing lost or repeated, no error, memory flat."""
    rng = random.Random(500)
    async with wsgen_serve(tmp_path) as server:
        rooms = await create_rooms(server, CLIENTS // ROOM_SIZE)
        started_at = server.rss_kib()
        first, peak = await run_round(server, rooms, SECONDS, rng)
        acked = check_round(first)
        after_first = server.rss_kib()
        await asyncio.sleep(5)
        idle = server.rss_kib()
        second, second_peak = await run_round(server, rooms, SECOND_ROUND, rng)
        acked |= check_round(second)
        after_second = server.rss_kib()
        assert await server.stop() == 0

    stored = stored_message_ids(server.database)
    assert len(stored) == len(set(stored)), "a stored message is duplicated"
    assert set(stored) == acked, "stored and acknowledged messages differ"
    assert not server.errors(), server.errors()[:5]
    assert after_first <= peak + 1024  # the clients gone, memory is not above its peak
    assert idle <= after_first + 1024  # idle: no growth (1 MiB of slack for allocator noise)
    # Another round of the same load leaves the server no bigger than the first did,
    # within 10 %: nothing kept per connection or per message.
    assert after_second <= after_first * 1.10, (after_first, after_second)

    acks = [x for c in first for x in c.ack_latency]
    deliveries = [x for c in first for x in c.delivery_latency]
    print(
        f"\nsoak: {CLIENTS} clients in {len(rooms)} rooms for {SECONDS:.0f} s "
        f"(+{SECOND_ROUND:.0f} s second round): {len(acked)} messages stored and acked "
        f"({len(acked) / (SECONDS + SECOND_ROUND):.0f}/s), "
        f"{sum(len(c.delivery_latency) for c in first + second)} deliveries, none lost or "
        f"repeated; ack p50 {statistics.median(acks) * 1000:.1f} ms, "
        f"p99 {percentile(acks, 99) * 1000:.1f} ms; delivery p50 "
        f"{statistics.median(deliveries) * 1000:.1f} ms, p99 "
        f"{percentile(deliveries, 99) * 1000:.1f} ms; RSS {started_at // 1024} MiB at start, "
        f"peak {peak // 1024} MiB, {after_first // 1024} MiB after the clients left, "
        f"{idle // 1024} MiB idle, {after_second // 1024} MiB after a second round "
        f"(peak {second_peak // 1024} MiB)"
    )
