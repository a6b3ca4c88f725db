"""`wsgen generate`: writes the registry only when it changes; `--check` writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from cli.generate import (
    EXIT_CONFIG_ERROR,
    EXIT_STALE,
    generate,
    generate_command,
    is_stale,
)
from cli.render import render
from cli.scan import scan

ROUTE = 'config = WebSocketHandler(path="{path}", on_connect=on_connect)\n'


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with two valid handler files and no generated/ yet."""
    for module, name, path in (("user", "user", "/ws/user"), ("comms", "chat", "/ws/chat/:room")):
        file = tmp_path / "handlers" / module / f"ws.{name}.py"
        file.parent.mkdir(parents=True)
        file.write_text(ROUTE.format(path=path))
    return tmp_path


def invoke(*args: str) -> Result:
    """Run the command through a Typer app built here, as `cli/main.py` registers it."""
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Keep `generate` a sub-command, as in the real CLI."""

    app.command("generate")(generate_command)
    return CliRunner().invoke(app, ["generate", *args])


def registry(root: Path) -> Path:
    return root / "generated" / "registry.py"


def test_generate_writes_then_is_unchanged(project: Path) -> None:
    """The first run writes the rendered registry and generated/__init__.py; the second keeps it."""
    outcome = generate(project)
    assert (outcome.status, outcome.routes, outcome.registry) == ("written", 2, registry(project))
    assert registry(project).read_text() == render(scan(project).handlers)
    assert (project / "generated" / "__init__.py").read_text() == ""
    mtime = registry(project).stat().st_mtime_ns
    assert generate(project).status == "unchanged"
    assert registry(project).stat().st_mtime_ns == mtime
    assert not is_stale(project)


def test_cli_generate_reports_on_stdout(project: Path) -> None:
    """The command prints one line per run: written, then up to date."""
    first = invoke("--root", str(project))
    assert (first.exit_code, first.stdout) == (0, "generated/registry.py: 2 routes (written)\n")
    second = invoke("--root", str(project))
    assert (second.exit_code, second.stdout) == (
        0,
        "generated/registry.py: 2 routes (up to date)\n",
    )


def test_check_missing_registry_is_stale_and_writes_nothing(project: Path) -> None:
    """`--check` without a registry exits 1 and creates nothing."""
    result = invoke("--check", "--root", str(project))
    assert result.exit_code == EXIT_STALE == 1
    assert "generated/registry.py is stale; run `wsgen generate`" in result.stderr
    assert not (project / "generated").exists()
    assert is_stale(project)


def test_check_current_then_stale_after_a_change(project: Path) -> None:
    """`--check` exits 0 when current, 2 after a handler changes, leaving the file as it was."""
    generate(project)
    assert invoke("--check", "--root", str(project)).exit_code == 0
    before = registry(project).read_bytes()
    (project / "handlers" / "user" / "ws.user.py").write_text(ROUTE.format(path="/ws/me"))
    result = invoke("--check", "--root", str(project))
    assert result.exit_code == EXIT_STALE
    assert registry(project).read_bytes() == before
    assert generate(project, check=True).status == "stale"


def test_scan_errors_exit_1_and_write_nothing(project: Path) -> None:
    """Handler errors are printed as file:line:col on stderr, exit 1, and nothing is written."""
    (project / "handlers" / "comms" / "ws.bad.py").write_text("config = WebSocketHandler(path=P)\n")
    result = invoke("--root", str(project))
    assert result.exit_code == EXIT_CONFIG_ERROR == 1
    assert "handlers/comms/ws.bad.py:1:32: `path` must be a string literal" in result.stderr
    assert result.stdout == ""
    assert not (project / "generated").exists()
    outcome = generate(project)
    assert outcome.status == "failed" and len(outcome.errors) == 1
    assert invoke("--check", "--root", str(project)).exit_code == EXIT_CONFIG_ERROR


def test_errors_do_not_touch_an_existing_registry(project: Path) -> None:
    """A failed run leaves the previous registry in place."""
    generate(project)
    before = registry(project).read_bytes()
    (project / "handlers" / "user" / "ws.user.py").write_text("config = (\n")
    assert invoke("--root", str(project)).exit_code == EXIT_CONFIG_ERROR
    assert registry(project).read_bytes() == before


def test_warnings_go_to_stderr(project: Path) -> None:
    """Warnings are printed on stderr and do not fail the run."""
    (project / "handlers" / "user" / "ws.user.py").write_text(
        'config = WebSocketHandler(path="/ws/user", events=EVENTS)\n'
    )
    result = invoke("--root", str(project))
    assert result.exit_code == 0
    assert "warning: handlers/user/ws.user.py:1:51: `events` is not a list literal" in result.stderr
    assert result.stdout == "generated/registry.py: 2 routes (written)\n"
