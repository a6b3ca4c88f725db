"""The seed's "Client Integration" code, run with Node and `ws`, against the server (SPEC §6)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import httpx

from core.testing import RunningServer, connect
from tests.conftest import create_room

NODE_DIR = Path(__file__).parent / "node"


async def test_seed_client_integration_code_chats_and_signals(
    server: RunningServer, api: httpx.AsyncClient
) -> None:
    """The seed's client connects with a Bearer header, displays chat and handles signaling."""
    node = shutil.which("node")
    assert node is not None, "Node.js is required (the README's test set-up installs it)"
    assert (NODE_DIR / "node_modules" / "ws").is_dir(), "run `npm ci` in tests/node"
    room = await create_room(api, "seed-user", "bob")
    async with connect(server, f"/ws/comms/chat-rooms/{room}", "bob") as bob:
        await bob.expect("connected")
        env = {
            **os.environ,
            "WSGEN_ORIGIN": f"ws://127.0.0.1:{server.port}",
            "ROOM_ID": room,
            "TOKEN": server.token("seed-user"),
        }
        proc = await asyncio.create_subprocess_exec(
            node, "seed_client.mjs", cwd=NODE_DIR, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert (await bob.expect("user.joined"))["userId"] == "seed-user"
            message = await bob.expect("chat.message")
            assert message["sender"] == "seed-user" and message["message"] == "Hello!"
            offer = await bob.expect("video.offer")
            assert offer["from"] == "seed-user" and offer["data"]["type"] == "offer"
            await bob.send("chat.message", {"text": "Hi from Bob"})
            await bob.send("video.answer", {"type": "answer", "sdp": "v=0"})
            stdout, stderr = await asyncio.wait_for(proc.communicate(), 15)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, stderr.decode()
    seen = [json.loads(line) for line in stdout.decode().splitlines()]
    logs = [entry["args"] for entry in seen if entry["kind"] == "log"]
    assert logs[0][0] == "Connected:" and logs[0][1]["roomId"] == room
    assert {"kind": "display", "from": "bob", "text": "Hi from Bob"} in seen
    signal = next(entry for entry in seen if entry["kind"] == "signal")
    assert signal == {
        "kind": "signal",
        "type": "video.answer",
        "from": "bob",
        "data": {"type": "answer", "sdp": "v=0"},
    }
