"""A real `wsgen serve` process under SIGTERM and kill -9 (SPEC §5, §6, §9).

SIGTERM: stop accepting, close every connection with 1001, finish what was acknowledged,
exit 0 within WSGEN_SHUTDOWN_TIMEOUT. kill -9: every message acknowledged to its sender is
in the SQLite file, and a restarted server serves it.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from contextlib import AsyncExitStack
from pathlib import Path

import orjson
import pytest
import websockets

from core.close_codes import CloseCode
from core.testing import Client, bearer
from tests.served import ServerProcess, stored_message_ids, wsgen_serve

SHUTDOWN_TIMEOUT = 5.0
KILL_ROUNDS = 20


def open_client(server: ServerProcess, path: str, user: str) -> websockets.connect:
    return websockets.connect(server.ws_url(path), additional_headers=bearer(server.token(user)))


async def create_room(server: ServerProcess, *users: str) -> str:
    async with server.api() as api:
        response = await api.post("/api/internal/chat-rooms", json={"participants": list(users)})
        assert response.status_code == 201, response.text
        room: str = response.json()["id"]
        return room


async def drain_until_closed(client: Client) -> int | None:
    """Read every frame until the server closes the connection; its close code."""
    try:
        while True:
            await client.ws.recv()
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None


async def chat_until_closed(client: Client, acked: list[str], prefix: str) -> int | None:
    """Send chat messages one after another, noting each acked id, until the server closes."""
    try:
        for i in range(1_000_000):
            ref = f"{prefix}-{i}"
            await client.send("chat.message", {"text": f"message {ref}"}, ref=ref)
            while True:
                frame = orjson.loads(await client.ws.recv())
                if frame["event"] == "ack" and frame["payload"]["ref"] == ref:
                    acked.append(frame["payload"]["message"]["id"])
                    break
                assert frame["event"] != "error", frame
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None
    raise AssertionError("never closed")


@pytest.mark.timeout(120)
async def test_sigterm_closes_100_clients_with_1001_and_exits_0(tmp_path: Path) -> None:
    """SIGTERM with 100 clients: all closed 1001, exit 0 in time, every acked message stored."""
    # 6 of the clients chat throughout; the signal comes right after an ack; new connections
    # are refused once the server is stopping.
    # No rate limit: the chatters send as fast as acks come back, which is not under test.
    async with wsgen_serve(
        tmp_path, SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT), RATE_LIMIT="0"
    ) as server:
        rooms = [await create_room(server, *(f"r{r}-u{i}" for i in range(10))) for r in range(5)]
        async with AsyncExitStack() as stack:
            clients: list[tuple[str, Client]] = []
            for i in range(50):
                ws = await stack.enter_async_context(open_client(server, "/ws/user", f"p{i}"))
                clients.append((f"p{i}", Client(ws)))
            for r, room in enumerate(rooms):
                for i in range(10):
                    path, user = f"/ws/comms/chat-rooms/{room}", f"r{r}-u{i}"
                    ws = await stack.enter_async_context(open_client(server, path, user))
                    clients.append((user, Client(ws)))
            for _, client in clients:
                await client.expect("connected")
            assert len(clients) == 100

            acked: list[str] = []
            chatting = {user for user, _ in clients if user.endswith("-u0") or user == "r0-u1"}
            tasks = [
                asyncio.create_task(
                    chat_until_closed(c, acked, u) if u in chatting else drain_until_closed(c)
                )
                for u, c in clients
            ]
            # Let the chatters get going, then signal right after an ack.
            async with asyncio.timeout(10):
                while len(acked) < 50:
                    await asyncio.sleep(0.01)
                last = len(acked)
                while len(acked) == last:
                    await asyncio.sleep(0)
            last_acked = acked[last]
            signalled = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)

            codes = await asyncio.wait_for(asyncio.gather(*tasks), SHUTDOWN_TIMEOUT + 5)
            assert codes == [CloseCode.GOING_AWAY] * 100
            with pytest.raises(OSError):  # no longer accepting
                async with open_client(server, "/ws/user", "late"):
                    pass
            assert await server.wait(SHUTDOWN_TIMEOUT + 10) == 0
            exited = time.monotonic() - signalled
            assert exited < SHUTDOWN_TIMEOUT + 2

    stored = stored_message_ids(server.database)
    assert last_acked in stored
    assert set(acked) <= set(stored)
    assert len(stored) == len(set(stored))
    assert not server.errors(), server.errors()
    report(f"SIGTERM: 100 clients got 1001, exit 0 after {exited:.2f} s, {len(acked)} acked")


async def chat_until_kill(server: ServerProcess, client: Client, acks: int) -> list[str]:
    """Pipeline chat messages (4 in flight) and kill -9 the server the moment the
    ``acks``-th ack arrives; the acked message ids."""
    acked: list[str] = []
    sent = 0
    for _ in range(4):
        await client.send("chat.message", {"text": f"m{sent}"}, ref=sent)
        sent += 1
    while True:
        frame = await client.recv(timeout=10)
        assert frame["event"] == "ack", frame
        acked.append(frame["payload"]["message"]["id"])
        if len(acked) == acks:
            server.proc.kill()  # SIGKILL, right after the ack
            return acked
        await client.send("chat.message", {"text": f"m{sent}"}, ref=sent)
        sent += 1


async def history_ids(server: ServerProcess, room: str, user: str) -> list[str]:
    """Every message id of ``room`` through the HTTP history, newest first."""
    ids: list[str] = []
    cursor: str | None = None
    async with server.api() as api:
        while True:
            params = {"limit": "200", **({"before": cursor} if cursor else {})}
            page = await api.get(
                f"/api/chat-rooms/{room}/messages",
                params=params,
                headers=bearer(server.token(user)),
            )
            assert page.status_code == 200, page.text
            body = page.json()
            ids += [item["id"] for item in body["items"]]
            cursor = body["nextCursor"]
            if cursor is None:
                return ids


@pytest.mark.timeout(240)
async def test_acked_messages_survive_kill_9(tmp_path: Path) -> None:
    """kill -9 the moment an ack arrives, 20 times: every acked message is stored, once."""
    # Each restarted server (on the same SQLite file) serves what was acked before.
    database = tmp_path / "wsgen.db"
    rng = random.Random(6)
    acked: list[str] = []
    room: str | None = None
    for _ in range(KILL_ROUNDS):
        async with wsgen_serve(tmp_path, database, RATE_LIMIT="0") as server:
            if room is None:
                room = await create_room(server, "alice")
            else:  # a restart after kill -9: what was acked before is served
                assert set(acked) <= set(await history_ids(server, room, "alice"))
            path = f"/ws/comms/chat-rooms/{room}"
            async with open_client(server, path, "alice") as ws:
                client = Client(ws)
                await client.expect("connected")
                acked += await chat_until_kill(server, client, rng.randint(1, 40))
            assert await server.wait(10) == -signal.SIGKILL
        stored = stored_message_ids(database)
        assert set(acked) <= set(stored), "an acknowledged message was lost"
        assert len(stored) == len(set(stored))
    report(f"kill -9: {KILL_ROUNDS} rounds, {len(acked)} acked messages, none lost")


def report(line: str) -> None:
    print(f"\n{line}")
