"""The CLI as a user runs it: serve's refusals and warnings, routes, token, settings errors."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from typer.testing import CliRunner

from cli.main import app as cli

runner = CliRunner()
WSGEN = str(Path(sys.executable).with_name("wsgen"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with one route, registered."""
    (tmp_path / "handlers").mkdir()
    result = runner.invoke(
        cli, ["new", "handler", "demo/echo", "--path", "/ws/demo/:room", "--root", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    return tmp_path


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A WSGEN_* environment that points the secrets file into the test's directory."""
    yield {"WSGEN_SECRETS_FILE": str(tmp_path / "secrets.json"), "WSGEN_LOG_FORMAT": "console"}


def test_serve_refuses_workers_without_a_shared_broker(project: Path, env: dict[str, str]) -> None:
    """`--workers 2` with the in-process broker exits 1 and names the setting to change."""
    result = runner.invoke(cli, ["serve", "--workers", "2", "--root", str(project)], env=env)
    assert result.exit_code == 1
    assert "WSGEN_BROKER_URL" in result.output


@pytest.mark.parametrize("url", ["kafka://broker:9092", "redis://host:port/0"])
def test_serve_refuses_a_bad_broker_url(project: Path, env: dict[str, str], url: str) -> None:
    """A WSGEN_BROKER_URL that is not memory:// or a Redis URL stops serve with one clear line."""
    result = runner.invoke(
        cli, ["serve", "--root", str(project)], env={**env, "WSGEN_BROKER_URL": url}
    )
    assert result.exit_code == 1
    assert result.output.startswith("error: WSGEN_BROKER_URL")


def test_serve_without_registry_says_to_generate(tmp_path: Path, env: dict[str, str]) -> None:
    """Serving a project that was never generated exits 1 with the command to run."""
    (tmp_path / "handlers").mkdir()
    result = runner.invoke(cli, ["serve", "--root", str(tmp_path)], env=env)
    assert result.exit_code == 1
    assert "run `wsgen generate`" in result.output


def test_bad_setting_is_named(project: Path, env: dict[str, str]) -> None:
    """An invalid WSGEN_* value stops the command with the variable's name."""
    result = runner.invoke(cli, ["serve", "--root", str(project)], env={**env, "WSGEN_PORT": "x"})
    assert result.exit_code == 1
    assert "WSGEN_PORT" in result.output


def test_routes_lists_path_middleware_hooks_and_events(project: Path) -> None:
    """`wsgen routes` describes each registered route."""
    result = runner.invoke(cli, ["routes", "--root", str(project)])
    assert result.exit_code == 0, result.output
    assert "/ws/demo/:room" in result.output
    assert "handlers/demo/ws.echo.py" in result.output
    assert "auth_middleware()" in result.output
    assert "on_connect, on_close" in result.output
    assert "ping" in result.output


def test_routes_warns_when_stale(project: Path) -> None:
    """A handler changed since the last generate makes `wsgen routes` warn."""
    file = project / "handlers" / "demo" / "ws.echo.py"
    file.write_text(file.read_text().replace("/ws/demo/:room", "/ws/demo2/:room"))
    result = runner.invoke(cli, ["routes", "--root", str(project)])
    assert result.exit_code == 0
    assert "stale" in result.output


def test_token_is_signed_with_the_server_secret(tmp_path: Path, env: dict[str, str]) -> None:
    """`wsgen token` signs with the development secret the server uses, with the asked TTL."""
    result = runner.invoke(cli, ["token", "carol", "--ttl", "120"], env=env)
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    secrets = (tmp_path / "secrets.json").read_text()
    assert oct((tmp_path / "secrets.json").stat().st_mode & 0o777) == "0o600"
    import json

    claims = jwt.decode(token, json.loads(secrets)["jwt_secret"], algorithms=["HS256"])
    assert claims["sub"] == "carol"
    assert claims["exp"] - claims["iat"] == 120


def test_secrets_file_readable_by_others_is_refused(tmp_path: Path, env: dict[str, str]) -> None:
    """A secrets file that group or others can read is refused with the fix."""
    assert runner.invoke(cli, ["token", "x"], env=env).exit_code == 0
    (tmp_path / "secrets.json").chmod(0o644)
    result = runner.invoke(cli, ["token", "x"], env=env)
    assert result.exit_code == 1
    assert "chmod 600" in result.output


async def test_serve_warns_when_the_registry_is_stale(project: Path, env: dict[str, str]) -> None:
    """`wsgen serve` on a stale registry warns, then serves the registry as it is."""
    file = project / "handlers" / "demo" / "ws.echo.py"
    file.write_text(file.read_text().replace("/ws/demo/:room", "/ws/demo2/:room"))
    proc = await asyncio.create_subprocess_exec(
        WSGEN, "serve", "--port", "0", "--root", str(project),
        env={**{k: v for k, v in os.environ.items() if not k.startswith("WSGEN_")}, **env},
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        lines: list[str] = []
        async with asyncio.timeout(20):
            async for raw in proc.stderr:
                lines.append(raw.decode())
                if "running on" in lines[-1]:
                    break
        output = "".join(lines)
        assert "generated/registry.py is stale" in output
        assert "running on" in output
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
