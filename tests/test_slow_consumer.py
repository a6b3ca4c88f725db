"""One frozen reader in a room of 200 is closed with 1013 and changes nobody else's delivery.

SPEC §5: a connection whose outgoing queue grows past its bound (a slow consumer) is
closed with 1013; it never slows the delivery to others. The room has 198 readers, one
sender and, in the second phase, one member that stops reading: the latencies of the
readers are measured with and without it, and each reader must get every message once
and in order.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import orjson
import websockets

from core import metrics
from core.close_codes import CloseCode
from core.settings import Settings
from core.testing import Client, RunningServer, bearer, connect
from tests.conftest import create_room, project_server, room_path, service_client

READERS = 198
QUEUE_MAX = 64
PAD = "x" * 8_000  # an SDP-sized signal: the frozen member's buffers fill in a few dozen
MEASURED = 40  # messages per phase whose latency is measured


@dataclass
class Reader:
    """A member that reads every frame and notes when each signal arrived."""

    client: Client
    arrivals: dict[int, float] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)
    progress: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while True:
            try:
                raw = await self.client.ws.recv(decode=False)
            except websockets.ConnectionClosed:
                return
            frame = orjson.loads(raw)
            if frame["event"] == "video.offer":
                seq = frame["payload"]["data"]["seq"]
                self.arrivals[seq] = time.monotonic()
                self.order.append(seq)
                self.progress.set()

    async def wait_for(self, seq: int, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while seq not in self.arrivals:
                self.progress.clear()
                await self.progress.wait()


async def send_and_wait(sender: Client, readers: list[Reader], seq: int) -> float:
    """Broadcast signal ``seq``; once every reader has it, return when it was sent."""
    sent = time.monotonic()
    await sender.send("video.offer", {"type": "offer", "seq": seq, "sdp": PAD}, ref=seq)
    await asyncio.gather(*(reader.wait_for(seq) for reader in readers))
    return sent


def latencies(readers: list[Reader], sent: dict[int, float]) -> list[float]:
    return [reader.arrivals[seq] - at for seq, at in sent.items() for reader in readers]


def slow_consumer_closes() -> float:
    labels = {"reason": "slow_consumer"}
    return metrics.REGISTRY.get_sample_value("wsgen_limit_closes_total", labels) or 0.0


@asynccontextmanager
async def connect_frozen(server: RunningServer, room: str) -> AsyncIterator[Client]:
    """A member whose client stops reading after one message, with a small receive buffer."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (server.host, server.port))
    async with websockets.connect(
        server.ws_url(room_path(room)),
        sock=sock,
        additional_headers=bearer(server.token("frozen")),
        max_queue=1,
    ) as ws:
        yield Client(ws)


async def test_a_frozen_reader_in_a_room_of_200_slows_nobody(settings: Settings) -> None:
    """A frozen member of a room of 200 is closed with 1013 and delays nobody else."""
    # Meanwhile every other member gets every message in order, the sender's acks keep
    # coming, and the readers' median latency stays near the one measured without it.
    members = ["sender", "frozen", *(f"m{i:03}" for i in range(READERS))]
    before = slow_consumer_closes()
    async with (
        project_server(settings, send_queue_max=QUEUE_MAX, rate_limit=0) as server,
        AsyncExitStack() as stack,
    ):
        async with service_client(server) as api:
            room = await create_room(api, *members)
        readers: list[Reader] = []
        for user in members[2:]:
            client = await stack.enter_async_context(connect(server, room_path(room), user))
            await client.expect("connected")
            readers.append(Reader(client))
        sender = await stack.enter_async_context(connect(server, room_path(room), "sender"))
        await sender.expect("connected")
        tasks = [asyncio.create_task(reader.run()) for reader in readers]
        try:
            sent = await check_phases(server, room, sender, readers)
            # Leave together, still reading: each departure is announced to the rest.
            await asyncio.gather(sender.ws.close(), *(r.client.ws.close() for r in readers))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for reader in readers:  # each message once, in order, none lost
            assert reader.order == list(range(sent))
    assert slow_consumer_closes() == before + 1


async def check_phases(
    server: RunningServer, room: str, sender: Client, readers: list[Reader]
) -> int:
    """Both phases and their latencies; how many messages were sent."""
    frozen_left = asyncio.Event()
    # Phase A, the baseline: the room without the frozen member.
    baseline = {seq: await send_and_wait(sender, readers, seq) for seq in range(MEASURED)}
    for seq in range(MEASURED):
        await next_ack(sender, seq, frozen_left)

    # Phase B: the frozen member joins and stops reading after its first frame.
    async with connect_frozen(server, room) as frozen:
        assert (await sender.expect("user.joined"))["userId"] == "frozen"
        with_frozen: dict[int, float] = {}
        seq = MEASURED
        while not frozen_left.is_set():
            assert seq < 2_000, "the frozen member was never closed"
            with_frozen[seq] = await send_and_wait(sender, readers, seq)
            await next_ack(sender, seq, frozen_left)
            seq += 1
        assert await frozen.closed_with(timeout=15) == CloseCode.TRY_AGAIN_LATER

    # While the frozen member was still in the room, every message reached every
    # reader and its ack came back: nothing waited for the frozen member to go.
    assert len(with_frozen) >= 10, f"closed after {len(with_frozen)} messages"
    before = statistics.median(latencies(readers, baseline))
    during = statistics.median(latencies(readers, with_frozen))
    report(before, during, len(with_frozen))
    assert during <= 3 * before + 0.050, (before, during)
    return seq


async def next_ack(sender: Client, seq: int, frozen_left: asyncio.Event) -> None:
    """The sender's ack of ``seq`` (a `user.left` of the frozen member may come first)."""
    while True:
        frame = await sender.recv(timeout=10)
        if frame["event"] == "user.left":
            assert frame["payload"]["userId"] == "frozen"
            frozen_left.set()
            continue
        assert frame == {"event": "ack", "payload": {"ref": seq}}, frame
        return


def report(before: float, during: float, messages: int) -> None:
    print(
        f"\nroom of {READERS + 2}: median latency {before * 1000:.1f} ms without the frozen "
        f"member, {during * 1000:.1f} ms with it ({messages} messages until its 1013)"
    )
