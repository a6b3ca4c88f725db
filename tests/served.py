"""`wsgen serve` as a real subprocess, for tests that signal or kill the server.

The server logs JSON to stderr; a task reads every line as it comes (so the pipe never
fills and blocks the server) and keeps them for the test. Secrets are fixed in the
environment, so the test mints tokens and calls the API without reading files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from core.tokens import TokenCodec
from tests.conftest import ROOT

WSGEN = str(Path(sys.executable).with_name("wsgen"))
LISTENING = re.compile(r"running on http://127\.0\.0\.1:(\d+)")


@dataclass
class ServerProcess:
    proc: asyncio.subprocess.Process
    database: Path
    jwt_secret: str
    api_key: str
    lines: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    _reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def token(self, user_id: str) -> str:
        return TokenCodec("HS256", self.jwt_secret).issue(user_id, 3600)

    def api(self) -> httpx.AsyncClient:
        """An HTTP client with the service API key (use with ``async with``)."""
        return httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=30,
        )

    def errors(self) -> list[dict[str, Any]]:
        """Log lines at level error or above (lines that are not JSON count too)."""
        return [r for r in self.lines if r.get("level") in ("error", "critical", None)]

    def rss_kib(self) -> int:
        """The server's resident memory (VmRSS), in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send ``sig`` and wait for the exit; the return code."""
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        return await self.wait(timeout)

    async def wait(self, timeout: float) -> int:
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)  # every line, up to the end of the pipe
        return code

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            text = raw.decode(errors="replace").rstrip("\n")
            try:
                record = json.loads(text)
            except ValueError:
                record = {"event": text}
                if text.startswith(("get a token", "warning: ")):
                    record["level"] = "info"  # the CLI's own plain lines
            if not isinstance(record, dict):
                record = {"event": text}
            self.lines.append(record)
            match = LISTENING.search(str(record.get("event", "")))
            if match and not self.port:
                self.port = int(match.group(1))


@contextlib.asynccontextmanager
async def wsgen_serve(
    tmp: Path, database: Path | None = None, **settings: str
) -> AsyncIterator[ServerProcess]:
    """Run ``wsgen serve --port 0`` on ``database`` (a SQLite file, default in ``tmp``).

    ``settings`` are ``WSGEN_*`` variables without the prefix, e.g. ``SHUTDOWN_TIMEOUT="5"``.
    On exit the process is killed if it is still running.
    """
    database = database or tmp / "wsgen.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSGEN_")}
    jwt_secret, api_key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    env |= {
        "WSGEN_JWT_SECRET": jwt_secret,
        "WSGEN_API_KEY": api_key,
        "WSGEN_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "WSGEN_SECRETS_FILE": str(tmp / "secrets.json"),
        "WSGEN_LOG_FORMAT": "json",
        "WSGEN_LOG_LEVEL": "INFO",
    }
    env |= {f"WSGEN_{name.upper()}": value for name, value in settings.items()}
    proc = await asyncio.create_subprocess_exec(
        WSGEN, "serve", "--port", "0", "--root", str(ROOT),
        env=env, cwd=tmp, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    server = ServerProcess(proc, database, jwt_secret, api_key)
    server._reader = asyncio.create_task(server._read())
    try:
        async with asyncio.timeout(30):
            while not server.port:
                if server._reader.done():
                    raise AssertionError(f"wsgen serve exited before listening: {server.lines}")
                await asyncio.sleep(0.01)
        yield server
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server._reader, 5)


def stored_message_ids(database: Path) -> list[str]:
    """The ids of every stored chat message, read from the SQLite file itself.

    Opening the file as a new connection replays the WAL, as a restarted server would.
    """
    with contextlib.closing(sqlite3.connect(database)) as db:
        return [row[0] for row in db.execute("SELECT id FROM chat_messages ORDER BY seq")]
