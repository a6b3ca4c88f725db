"""The Python cost of a handshake and of a ping, measured in one process.

    .venv/bin/python bench/inprocess.py                  # handshakes, then pings
    .venv/bin/python bench/inprocess.py --rounds 9 --memory
    PYTHONPATH=/path/to/other/checkout .venv/bin/python bench/inprocess.py   # another build

The harness's figures move by ±10 % between runs, too much to tell a change of a few
microseconds per handshake. Here the project's app (its handlers, JWT auth, the
participant check on a real SQLite file, the hub) runs behind wsgen's HTTP protocol
class on fake transports: no sockets and no system calls, so what is measured is the
Python work only, the part wsgen's code decides.

- handshakes: ``--conns`` upgrade requests in rooms of 10, each fed to a new
  ``WsgenHttpProtocol`` as the event loop's read callback would, then the pass's
  writes; every connection must get its 101 and greeting. Between rounds the
  connections are closed and the garbage collector run, outside the clock. Reported:
  microseconds per handshake (each round, the minimum and the median), and the
  collector's passes and time during the rounds.
- pings: ``--pingers`` open connections each fed one ``{"type":"ping"}`` frame per
  event-loop pass, ``--pings`` times, outside any task as uvloop's read callbacks
  are. Reported: microseconds per ping, from frame to queued pong.
- ``--memory``: bytes of Python heap per live connection (tracemalloc; slower).

Compare builds by running each several times, alternately: the figures still move by
a few percent between processes.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class GcTally:
    """The collector's passes per generation and the time they took."""

    def __init__(self) -> None:
        self.passes = [0, 0, 0]
        self.seconds = 0.0
        self._started = 0.0

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.passes[info["generation"]] += 1


def masked_text_frame(payload: bytes) -> bytes:
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


async def passes(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def measure(args: argparse.Namespace) -> None:
    import uvicorn
    from uvicorn.server import ServerState

    from core.server import app_from_registry, uvicorn_options
    from core.settings import Settings
    from core.testing import FakeTransport
    from core.upgrade import WsgenHttpProtocol

    data = tempfile.mkdtemp(prefix="wsgen-inprocess-")
    settings = Settings(
        jwt_secret="s" * 32,
        api_key="k" * 32,
        database_url=f"sqlite+aiosqlite:///{data}/inprocess.db",
        log_level="WARNING",
        rate_limit=0,
    )
    app = app_from_registry(ROOT, settings)
    async with app.router.lifespan_context(app):
        services = app.state.services
        users = [f"user-{i:05d}" for i in range(args.conns)]
        for first in range(0, args.conns, 10):
            await services.store.create_room(f"room-{first // 10}", users[first : first + 10])
        requests = [
            (
                f"GET /ws/comms/chat-rooms/room-{i // 10} HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
                "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"Authorization: Bearer {services.tokens.issue(user)}\r\n\r\n"
            ).encode()
            for i, user in enumerate(users)
        ]
        config = uvicorn.Config(app, **uvicorn_options(settings))
        config.load()
        state, app_state = ServerState(), {}
        loop = asyncio.get_running_loop()

        async def handshake_round(count: int) -> tuple[float, list[FakeTransport]]:
            transports: list[FakeTransport] = []
            started = time.perf_counter()
            for first in range(0, count, 50):  # 50 requests per event-loop pass
                done = asyncio.Event()

                def read(first: int = first, done: asyncio.Event = done) -> None:
                    transports.extend(open_all_from(first, min(first + 50, count)))
                    done.set()

                loop.call_soon(read)
                await done.wait()
                await passes(6)
            await passes(6)
            elapsed = time.perf_counter() - started
            answered = sum(1 for t in transports if len(t.written) > 150)
            if answered != count:
                sys.exit(f"only {answered} of {count} handshakes were answered")
            return elapsed / count * 1e6, transports

        def open_all_from(start: int, stop: int) -> list[FakeTransport]:
            transports = []
            for i in range(start, stop):
                http = WsgenHttpProtocol(config=config, server_state=state, app_state=app_state)
                transport = FakeTransport()
                http.connection_made(transport)
                http.data_received(requests[i])
                transports.append(transport)
            return transports

        async def close_all(transports: list[FakeTransport]) -> None:
            for protocol in list(state.connections):
                protocol.connection_lost(None)
            for transport in transports:
                transport.protocol = None
            await passes(50)
            await asyncio.sleep(0.05)
            gc.collect()

        collector = GcTally()

        gc.collect()
        if args.memory:
            tracemalloc.start()
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            _, transports = await handshake_round(args.conns)
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
            per_connection = (after - before) / args.conns
            print(f"memory: {per_connection:,.0f} bytes of Python heap per live connection")
            await close_all(transports)

        figures = []
        for _ in range(args.rounds):
            gc.callbacks.append(collector.on_gc)
            per_handshake, transports = await handshake_round(args.conns)
            gc.callbacks.remove(collector.on_gc)
            figures.append(per_handshake)
            await close_all(transports)
        print(
            f"handshakes ({args.conns} per round): "
            + " ".join(f"{f:.1f}" for f in figures)
            + f" us; min {min(figures):.1f}, median {statistics.median(figures):.1f}"
        )
        print(
            f"  garbage collector during the rounds: {collector.passes} passes "
            f"(generations 0/1/2), {collector.seconds * 1e3:.0f} ms"
        )

        if args.pings:
            pingers = open_all_from(0, args.pingers)
            await passes(20)
            protocols = [t.protocol for t in pingers]
            frame = masked_text_frame(b'{"type":"ping"}')
            figures = []
            for _ in range(args.rounds):
                before = [len(t.written) for t in pingers]

                def feed() -> None:
                    for protocol in protocols:
                        protocol.data_received(frame)

                started = time.perf_counter()
                for _ in range(args.pings):
                    loop.call_soon(feed)  # outside any task, as the loop's read callbacks
                    await passes(2)  # the handling, then the pass's writes
                elapsed = time.perf_counter() - started
                pongs = sum(len(t.written) - b for t, b in zip(pingers, before, strict=True))
                if pongs < 60 * args.pings * len(pingers):
                    sys.exit("not every ping was answered")
                figures.append(elapsed / (args.pings * len(pingers)) * 1e6)
            print(
                f"pings ({args.pingers} connections x {args.pings}): "
                + " ".join(f"{f:.2f}" for f in figures)
                + f" us; min {min(figures):.2f}, median {statistics.median(figures):.2f}"
            )
            await close_all(pingers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conns", type=int, default=5000, help="handshakes per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--pingers", type=int, default=100)
    parser.add_argument("--pings", type=int, default=200, help="pings per connection per round")
    parser.add_argument("--no-pings", dest="pings", action="store_const", const=0)
    parser.add_argument("--memory", action="store_true", help="also heap bytes per connection")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import uvloop

    uvloop.run(measure(args))


if __name__ == "__main__":
    main()
