"""`wsgen new handler` makes a route that serves at once, on a real server (SPEC §2)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest
import websockets
from typer.testing import CliRunner

from cli.main import app as cli
from core.server import app_from_registry
from core.settings import Settings
from core.testing import bearer, receive_json, serve

runner = CliRunner()
WSGEN = str(Path(sys.executable).with_name("wsgen"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty wsgen project: no handlers yet."""
    (tmp_path / "handlers").mkdir()
    return tmp_path


def new_handler(project: Path, target: str, path: str) -> None:
    result = runner.invoke(cli, ["new", "handler", target, "--path", path, "--root", str(project)])
    assert result.exit_code == 0, result.output


def test_new_handler_writes_the_file_and_registers_it(project: Path) -> None:
    """The file lands at handlers/<module>/ws.<name>.py and the registry lists its route."""
    new_handler(project, "demo/echo-room", "/ws/demo/:room")
    file = project / "handlers" / "demo" / "ws.echo-room.py"
    assert file.exists()
    assert "auth_middleware()" in file.read_text()
    registry = (project / "generated" / "registry.py").read_text()
    assert "'/ws/demo/:room'" in registry or '"/ws/demo/:room"' in registry
    check = runner.invoke(cli, ["generate", "--check", "--root", str(project)])
    assert check.exit_code == 0, check.output


def test_new_handler_refuses_to_overwrite(project: Path) -> None:
    """A second `new handler` for the same file fails and leaves the file as it was."""
    new_handler(project, "demo/echo", "/ws/demo")
    file = project / "handlers" / "demo" / "ws.echo.py"
    file.write_text(file.read_text() + "# edited by hand\n")
    result = runner.invoke(
        cli, ["new", "handler", "demo/echo", "--path", "/ws/other", "--root", str(project)]
    )
    assert result.exit_code == 1
    assert "refusing to overwrite" in result.output
    assert file.read_text().endswith("# edited by hand\n")


@pytest.mark.parametrize(
    ("target", "path", "message"),
    [
        ("demo", "/ws/x", "must be <module>/<name>"),
        ("Demo/x", "/ws/x", "must be <module>/<name>"),
        ("demo/x", "ws/x", "must start with '/'"),
        ("demo/x", "/ws/:", "needs a name"),
    ],
)
def test_new_handler_rejects_bad_arguments(
    project: Path, target: str, path: str, message: str
) -> None:
    """Bad targets and paths are refused with a clear message and nothing is written."""
    result = runner.invoke(cli, ["new", "handler", target, "--path", path, "--root", str(project)])
    assert result.exit_code == 1
    assert message in result.output
    assert list((project / "handlers").iterdir()) == []


def test_new_handler_refuses_a_colliding_path(project: Path) -> None:
    """A path that collides with a registered one (`:a` vs `:b`) is refused."""
    new_handler(project, "demo/one", "/ws/demo/:a")
    result = runner.invoke(
        cli, ["new", "handler", "demo/two", "--path", "/ws/demo/{b}", "--root", str(project)]
    )
    assert result.exit_code == 1
    assert "collides" in result.output
    assert not (project / "handlers" / "demo" / "ws.two.py").exists()


@pytest.fixture
async def served_project(project: Path, settings: Settings) -> AsyncIterator[object]:
    new_handler(project, "demo/echo", "/ws/demo/:room")
    async with serve(app_from_registry(project, settings), settings) as server:
        yield server


async def test_new_handler_serves_connected_and_pong(served_project: object) -> None:
    """A real client gets `connected` with its user id and path parameter, then `pong`."""
    server = served_project
    url = server.ws_url("/ws/demo/r42")  # type: ignore[attr-defined]
    token = server.token("alice")  # type: ignore[attr-defined]
    async with websockets.connect(url, additional_headers=bearer(token)) as ws:
        connected = await receive_json(ws)
        assert connected["event"] == "connected"
        assert connected["payload"]["userId"] == "alice"
        assert connected["payload"]["room"] == "r42"
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", connected["payload"]["timestamp"]
        )
        await ws.send(orjson.dumps({"type": "ping"}).decode())
        pong = await receive_json(ws)
        assert pong["event"] == "pong"
        assert set(pong["payload"]) == {"timestamp"}


async def test_new_handler_refuses_a_connection_without_token(served_project: object) -> None:
    """The template's auth middleware refuses a handshake without a token with HTTP 401."""
    url = served_project.ws_url("/ws/demo/r1")  # type: ignore[attr-defined]
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(url):
            pass
    assert info.value.response.status_code == 401


@pytest.fixture
def wsgen_env(project: Path) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSGEN_")}
    env["WSGEN_SECRETS_FILE"] = str(project / ".wsgen" / "secrets.json")
    env["WSGEN_LOG_FORMAT"] = "console"
    yield env


async def test_wsgen_serve_runs_a_new_handler_as_a_user_would(
    project: Path, wsgen_env: dict[str, str]
) -> None:
    """`wsgen new handler`, `wsgen token` and `wsgen serve` as subprocesses, then a real client."""
    subprocess.run(
        [WSGEN, "new", "handler", "demo/echo", "--path", "/ws/demo/:room", "--root", str(project)],
        check=True,
        env=wsgen_env,
        capture_output=True,
    )
    token = subprocess.run(
        [WSGEN, "token", "bob"],
        check=True,
        env=wsgen_env,
        capture_output=True,
        text=True,
        cwd=project,
    ).stdout.strip()
    proc = await asyncio.create_subprocess_exec(
        WSGEN,
        "serve",
        "--port",
        "0",
        "--root",
        str(project),
        env=wsgen_env,
        cwd=project,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        port = await asyncio.wait_for(read_port(proc), 20)
        url = f"ws://127.0.0.1:{port}/ws/demo/lobby"
        async with websockets.connect(url, additional_headers=bearer(token)) as ws:
            connected = await receive_json(ws)
            assert connected["payload"]["userId"] == "bob"
            assert connected["payload"]["room"] == "lobby"
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


async def read_port(proc: asyncio.subprocess.Process) -> int:
    """The port from uvicorn's "Uvicorn running on http://127.0.0.1:PORT" line."""
    assert proc.stderr is not None
    async for raw in proc.stderr:
        match = re.search(r"running on http://127\.0\.0\.1:(\d+)", raw.decode())
        if match:
            return int(match.group(1))
    raise AssertionError("wsgen serve exited before it listened")


def test_new_handler_refuses_a_name_that_loads_as_an_existing_module(project: Path) -> None:
    """`chat-rooms` next to `chat_rooms` would share a module name: refused, nothing written."""
    new_handler(project, "comms/chat_rooms", "/ws/a")
    result = runner.invoke(
        cli, ["new", "handler", "comms/chat-rooms", "--path", "/ws/b", "--root", str(project)]
    )
    assert result.exit_code == 1
    assert "same module" in result.output
    assert not (project / "handlers" / "comms" / "ws.chat-rooms.py").exists()
    assert runner.invoke(cli, ["generate", "--check", "--root", str(project)]).exit_code == 0
