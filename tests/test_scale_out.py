"""Several `wsgen serve` processes on one Redis and one PostgreSQL act as one server (SPEC §5, §8).

Each test starts real server processes (the CLI, as an operator would) on free
loopback ports, sharing a private redis-server and PostgreSQL cluster, and talks
to them with real WebSocket and HTTP clients. Every wait has a deadline; every
process is stopped in a ``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import websockets

from core.close_codes import CloseCode
from core.testing import Client, bearer
from tests.conftest import ROOT, WSGEN, eventually, replacing, room_path
from tests.services import RedisServer, free_port

pytestmark = pytest.mark.timeout(90)

SECRET = "scale-out-test-secret-0123456789abcdef"
API_KEY = "scale-out-test-api-key"
TTL = 2.0  # WSGEN_PRESENCE_TTL of the servers: a killed process's members go within it
START_TIMEOUT = 30.0


@dataclass
class ServerProcess:
    """One `wsgen serve` process (or a uvicorn master with its workers)."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def api(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.http, headers=bearer(API_KEY), timeout=10)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no clean-up, as in a crash."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


def token(user: str) -> str:
    return jwt.encode({"sub": user, "exp": int(time.time()) + 3600}, SECRET, "HS256")


async def readiness(server: ServerProcess) -> tuple[int, Any]:
    async with httpx.AsyncClient(timeout=5) as client:
        try:
            response = await client.get(server.http + "/readyz")
        except httpx.TransportError:
            return 0, None
        return response.status_code, response.json()


@pytest.fixture
def launch(
    tmp_path: Path, redis_url: str, postgres_url: str
) -> Iterator[Callable[..., Awaitable[ServerProcess]]]:
    """Start `wsgen serve` processes sharing the test's Redis and PostgreSQL database."""
    started: list[ServerProcess] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSGEN_")}
    env |= {
        "WSGEN_BROKER_URL": redis_url,
        "WSGEN_DATABASE_URL": postgres_url,
        "WSGEN_JWT_SECRET": SECRET,
        "WSGEN_API_KEY": API_KEY,
        "WSGEN_PRESENCE_TTL": str(TTL),
        "WSGEN_LOG_FORMAT": "json",
        "WSGEN_SECRETS_FILE": str(tmp_path / "secrets.json"),
    }

    async def start(*args: str) -> ServerProcess:
        port = free_port()
        log = tmp_path / f"server-{len(started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [WSGEN, "serve", "--root", str(ROOT), "--port", str(port), *args],
                env=env,
                cwd=tmp_path,  # no developer .env
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, workers included
            )
        server = ServerProcess(port, process, log)
        started.append(server)
        deadline = time.monotonic() + START_TIMEOUT
        while (await readiness(server))[0] != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not become ready:\n{log.read_text()[-3000:]}")
            await asyncio.sleep(0.1)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@contextlib.asynccontextmanager
async def connect(server: ServerProcess, path: str, user: str) -> AsyncIterator[Client]:
    headers = bearer(token(user))
    async with websockets.connect(
        server.ws(path), additional_headers=headers, close_timeout=2
    ) as ws:
        yield Client(ws)


async def create_room(server: ServerProcess, *participants: str) -> str:
    async with server.api() as api:
        response = await api.post("/api/internal/chat-rooms", json={"participants": participants})
    assert response.status_code == 201, response.text
    room: str = response.json()["id"]
    return room


async def online_seen_by_a_newcomer(server: ServerProcess, room: str, user: str) -> list[str]:
    async with connect(server, room_path(room), user) as client:
        online: list[str] = (await client.expect("connected"))["online"]
        return online


async def test_chat_crosses_processes_both_ways(launch: Callable[..., Any]) -> None:
    """Members on two processes see each other join and chat both ways, without echo."""
    a, b = await launch(), await launch()
    room = await create_room(a, "alice", "bob")
    async with connect(a, room_path(room), "alice") as alice:
        assert (await alice.expect("connected"))["online"] == ["alice"]
        async with connect(b, room_path(room), "bob") as bob:
            assert (await bob.expect("connected"))["online"] == ["alice", "bob"]
            assert (await alice.expect("user.joined"))["userId"] == "bob"
            ack = await alice.request("chat.message", {"text": "hello from A"}, ref="1")
            assert ack["event"] == "ack"
            assert await bob.expect("chat.message") == ack["payload"]["message"]
            await alice.assert_quiet()  # no echo to the sender
            async with connect(b, room_path(room), "alice") as alice_tab:  # second tab, on B
                await alice_tab.expect("connected")
                await bob.send("chat.message", {"text": "hello from B"})
                assert (await alice.expect("chat.message"))["message"] == "hello from B"
                assert (await alice_tab.expect("chat.message"))["message"] == "hello from B"
                await alice.send("chat.typing", {"isTyping": True})
                assert await bob.expect("chat.typing") == {"from": "alice", "isTyping": True}
                assert (await alice_tab.expect("chat.typing"))["from"] == "alice"
                await bob.assert_quiet()
        assert (await alice.expect("user.left"))["userId"] == "bob"


async def test_http_publish_on_one_process_reaches_a_user_on_the_other(
    launch: Callable[..., Any],
) -> None:
    """An event and a notification published through A's API reach alice's /ws/user on B."""
    a, b = await launch(), await launch()
    event = {"appointmentId": "a1", "providerId": "p1", "confirmedAt": "2026-11-29T10:00:00.000Z"}
    async with connect(b, "/ws/user", "alice") as alice:
        await alice.expect("connected")
        await alice.assert_quiet()  # tracked (and subscribed) once a round trip is done
        async with a.api() as api:
            body = {"event": "appointment.confirmed", "payload": event}
            assert (
                await api.post("/api/internal/users/alice/events", json=body)
            ).status_code == 202
            note = {"userId": "alice", "type": "reminder", "title": "T", "message": "M"}
            created = await api.post("/api/internal/notifications", json=note)
            assert created.status_code == 201
        assert await alice.expect("appointment.confirmed") == event
        assert (await alice.expect("notification.new"))["id"] == created.json()["id"]


async def test_a_newer_connection_on_another_process_replaces_the_oldest_with_4409(
    launch: Callable[..., Any],
) -> None:
    """alice's /ws/user on A is closed with 4409 when she connects on B; B's one keeps working."""
    a, b = await launch(), await launch()
    async with replacing(
        connect(a, "/ws/user", "alice"), connect(b, "/ws/user", "alice")
    ) as second:
        async with a.api() as api:
            body = {"userId": "alice", "type": "t", "title": "T", "message": "M"}
            assert (await api.post("/api/internal/notifications", json=body)).status_code == 201
        await second.expect("notification.new")


async def test_removal_on_one_process_closes_the_member_on_the_other_with_4403(
    launch: Callable[..., Any],
) -> None:
    """DELETE of a participant through A closes their room connection on B with 4403."""
    a, b = await launch(), await launch()
    room = await create_room(a, "alice", "bob")
    async with connect(b, room_path(room), "bob") as bob:
        await bob.expect("connected")
        async with a.api() as api:
            response = await api.delete(f"/api/internal/chat-rooms/{room}/participants/bob")
            assert response.status_code == 204
        assert await bob.closed_with() == CloseCode.REMOVED


async def test_presence_spans_processes_and_forgets_a_killed_one(
    launch: Callable[..., Any],
) -> None:
    """`online` spans processes; after a SIGKILL, its members leave within the TTL, announced."""
    a, b = await launch(), await launch()
    room = await create_room(a, "alice", "bob", "carol")
    async with (
        connect(a, room_path(room), "alice") as alice,
        connect(b, room_path(room), "bob") as bob,  # left to die with its server
    ):
        await alice.expect("connected")
        await bob.expect("connected")
        await alice.expect("user.joined")
        assert await online_seen_by_a_newcomer(a, room, "carol") == ["alice", "bob", "carol"]
        b.kill()
        killed = time.monotonic()

        async def bob_gone() -> bool:
            return await online_seen_by_a_newcomer(a, room, "carol") == ["alice", "carol"]

        await eventually(bob_gone, timeout=TTL + 10)
        assert time.monotonic() - killed < TTL + 5
        # A surviving process announces that bob left (carol came and went meanwhile).
        while (frame := await alice.recv())["payload"].get("userId") != "bob":
            assert frame["event"] in ("user.joined", "user.left"), frame
        assert frame["event"] == "user.left"


async def test_a_redis_restart_mid_session(
    launch: Callable[..., Any], redis_server: RedisServer
) -> None:
    """Redis down: not ready, chat stored and acked; Redis back: cross-process chat resumes."""
    a, b = await launch(), await launch()
    room = await create_room(a, "alice", "bob")
    async with (
        connect(a, room_path(room), "alice") as alice,
        connect(b, room_path(room), "bob") as bob,
    ):
        await alice.expect("connected")
        await bob.expect("connected")
        await alice.expect("user.joined")
        redis_server.stop()

        async def a_not_ready() -> bool:
            status, body = await readiness(a)
            return status == 503 and body["checks"]["broker"] != "ok"

        await eventually(a_not_ready)
        ack = await alice.request("chat.message", {"text": "while Redis is down"}, ref="d")
        assert ack["event"] == "ack", ack
        stored = ack["payload"]["message"]
        async with httpx.AsyncClient(base_url=b.http, headers=bearer(token("bob"))) as api:
            history = await api.get(f"/api/chat-rooms/{room}/messages")
        assert history.json()["items"][0] == stored
        assert (await alice.request("ping", ref="p"))["event"] == "pong"  # still served

        redis_server.start()

        async def both_ready() -> bool:
            return (await readiness(a))[0] == (await readiness(b))[0] == 200

        await eventually(both_ready, timeout=20)
        # Delivery across processes is back (what was published meanwhile may be lost).
        await bob.send("chat.message", {"text": "Redis is back"})
        while (frame := await alice.recv())["event"] != "chat.message":
            assert frame["event"] in ("ack", "pong", "chat.message"), frame
        assert frame["payload"]["message"] == "Redis is back"
        await alice.send("chat.message", {"text": "and both ways"})
        while (frame := await bob.recv())["event"] != "chat.message" or (
            frame["payload"]["message"] != "and both ways"
        ):
            pass

        async def presence_reasserted() -> bool:
            # Re-asserted entries arrive in the order the processes re-assert them.
            return sorted(await online_seen_by_a_newcomer(a, room, "alice")) == ["alice", "bob"]

        await eventually(presence_reasserted, timeout=10)
    for server in (a, b):  # the operator can tell what happened from the log
        log = server.log.read_text()
        assert "broker connection lost; reconnecting" in log
        assert "broker reconnected; subscriptions restored" in log


async def test_workers_share_one_port_and_act_as_one(launch: Callable[..., Any]) -> None:
    """`wsgen serve --workers 2` runs two processes: presence, chat and 4409 span them."""
    server = await launch("--workers", "2")

    def node_ids() -> set[str]:
        return set(re.findall(r'"node": ?"([0-9a-f]{32})"', server.log.read_text()))

    async def two_workers() -> bool:
        return len(node_ids()) == 2

    await eventually(two_workers)
    users = [f"user{i}" for i in range(6)]
    room = await create_room(server, *users)
    async with contextlib.AsyncExitStack() as stack:
        members = []
        for i, user in enumerate(users):
            client = await stack.enter_async_context(connect(server, room_path(room), user))
            assert (await client.expect("connected"))["online"] == users[: i + 1]
            for earlier in members:
                assert (await earlier.expect("user.joined"))["userId"] == user
            members.append(client)
        await members[0].send("chat.message", {"text": "to every worker"})
        for member in members[1:]:
            assert (await member.expect("chat.message"))["message"] == "to every worker"
        await members[0].assert_quiet()
    for _ in range(3):  # whichever workers the two connections land on
        async with replacing(
            connect(server, "/ws/user", "dora"), connect(server, "/ws/user", "dora")
        ):
            pass
