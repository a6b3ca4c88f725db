"""Fixtures shared by the test suite: settings in a temp dir and captured JSON logs."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvloop

from core.close_codes import CloseCode
from core.server import app_from_registry
from core.settings import Settings
from core.store.schema import metadata
from core.testing import Client, RunningServer, connect, serve
from tests.services import (
    PostgresCluster,
    RedisServer,
    missing,
    postgres_bindir,
    redis_binary,
)

ROOT = Path(__file__).resolve().parent.parent
PG_DATABASE = "wsgen_test"
TABLES = sorted(metadata.tables)
WSGEN = str(Path(sys.executable).with_name("wsgen"))  # the CLI of this virtualenv


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every test runs on the event loop production runs: uvicorn picks uvloop, and uvloop
    orders ready callbacks and I/O differently from asyncio's own loop."""
    return {"uvloop": uvloop.new_event_loop}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the store the `settings` fixture points at: a SQLite file in tmp (default) "
        "or a fresh database in a private PostgreSQL cluster started for the session",
    )


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server for the session, on a free loopback port."""
    binary = redis_binary()
    if binary is None:
        missing("redis-server is not installed")
        raise AssertionError("unreachable")
    server = RedisServer(binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied and running (a test may have stopped it)."""
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    redis_server.flush()
    return redis_server.url


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A private PostgreSQL cluster for the session, with a migrated database for tests."""
    bindir = postgres_bindir()
    if bindir is None:
        missing("PostgreSQL (initdb, pg_ctl) is not installed")
        raise AssertionError("unreachable")
    cluster = PostgresCluster(bindir)
    try:
        cluster.start()
        cluster.sql(f"CREATE DATABASE {PG_DATABASE}")
        # The schema comes from `wsgen db upgrade`, as in production.
        upgraded = subprocess.run(
            [WSGEN, "db", "upgrade"],
            env={**os.environ, "WSGEN_DATABASE_URL": cluster.url(PG_DATABASE)},
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert upgraded.returncode == 0, upgraded.stderr
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """The session's migrated PostgreSQL database, emptied for this test.

    Emptying (TRUNCATE, ~10 ms) instead of creating a database per test (~300 ms)
    keeps the PostgreSQL run of the protocol suite short; tests run one at a time.
    """
    postgres_cluster.sql(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE", PG_DATABASE)
    return postgres_cluster.url(PG_DATABASE)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store of this test: SQLite in tmp, or PostgreSQL with ``--database postgresql``."""
    if request.config.getoption("--database") == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return f"sqlite+aiosqlite:///{tmp_path / 'wsgen.db'}"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings isolated from the developer's environment: secrets in a temp file."""
    return Settings(
        secrets_file=tmp_path / "secrets.json",
        database_url=database_url,
        log_format="json",
        log_level="INFO",
        _env_file=None,  # type: ignore[call-arg]
    )


class LogCapture(logging.Handler):
    """Every log record of the test, rendered by wsgen's own JSON formatter and parsed back.

    It reads the formatter off the handler ``core.logging`` installs, at emit time,
    so it sees exactly what an operator's log pipeline would get.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        wsgen = next((h for h in logging.getLogger().handlers if h.get_name() == "wsgen"), None)
        if wsgen is None or wsgen.formatter is None or not wsgen.filter(record):
            return
        self.lines.append(json.loads(wsgen.formatter.format(record)))

    def records(self, event: str | None = None, **fields: Any) -> list[dict[str, Any]]:
        return [
            r
            for r in self.lines
            if (event is None or r.get("event") == event)
            and all(r.get(k) == v for k, v in fields.items())
        ]


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    capture = LogCapture()
    root = logging.getLogger()
    root.addHandler(capture)
    try:
        yield capture
    finally:
        root.removeHandler(capture)


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[RunningServer]:
    """The project's own routes (generated/registry.py) on a real uvicorn, SQLite in tmp."""
    async with serve(app_from_registry(ROOT, settings), settings) as running:
        yield running


@asynccontextmanager
async def project_server(settings: Settings, **updates: Any) -> AsyncIterator[RunningServer]:
    """The project's routes on a real uvicorn, with ``updates`` applied to ``settings``."""
    changed = settings.model_copy(update=updates)
    async with serve(app_from_registry(ROOT, changed), changed) as running:
        yield running


def service_client(server: RunningServer) -> httpx.AsyncClient:
    """An HTTP client for ``server`` holding the service API key (use with ``async with``)."""
    headers = {"Authorization": f"Bearer {server.services.api_key}"}
    return httpx.AsyncClient(base_url=server.http_url(""), headers=headers)


@pytest.fixture
async def api(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the server, holding the service API key."""
    async with service_client(server) as client:
        yield client


async def create_room(api: httpx.AsyncClient, *participants: str) -> str:
    """A new chat room with these participants; its id."""
    response = await api.post("/api/internal/chat-rooms", json={"participants": list(participants)})
    assert response.status_code == 201, response.text
    room_id: str = response.json()["id"]
    return room_id


def room_path(room: str) -> str:
    return f"/ws/comms/chat-rooms/{room}"


@asynccontextmanager
async def room_members(
    server: RunningServer, room: str, *users: str
) -> AsyncIterator[list[Client]]:
    """One connection per name in ``users``, joined in order, the greetings consumed.

    Each client has read its `connected`, and every earlier client the `user.joined`
    of each user that became present after it; the next frame is a new one.
    """
    async with AsyncExitStack() as stack:
        clients: list[Client] = []
        present: set[str] = set()
        for user in users:
            client = await stack.enter_async_context(connect(server, room_path(room), user))
            await client.expect("connected")
            if user not in present:
                for earlier in clients:
                    assert (await earlier.expect("user.joined"))["userId"] == user
                present.add(user)
            clients.append(client)
        yield clients


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    """Poll ``check`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def replacing(
    first: AbstractAsyncContextManager[Client], second: AbstractAsyncContextManager[Client]
) -> AsyncIterator[Client]:
    """Connect ``first``, then ``second`` (one user's /ws/user connections): the first must
    be closed with 4409 (replaced) and the second stay quiet. Yields the second."""
    async with first as older:
        await older.expect("connected")
        await older.assert_quiet()
        async with second as newer:
            await newer.expect("connected")
            assert await older.closed_with() == CloseCode.REPLACED
            await newer.assert_quiet()
            yield newer
