"""``wsgen generate``: scan the handler files and write ``generated/registry.py``.

Exit codes: 0 done (or up to date); 1 a handler file is wrong, or, under
``--check``, the registry is stale (SPEC §2). Either way nothing is written.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import typer

from cli.options import RootOption
from cli.render import render
from cli.scan import scan
from core.errors import ConfigError
from core.server import registry_file

REGISTRY = "generated/registry.py"
EXIT_CONFIG_ERROR = 1
EXIT_STALE = 1  # SPEC §2: `--check` exits 1 when the registry is stale
STALE_MESSAGE = f"{REGISTRY} is stale; run `wsgen generate`"

Status = Literal["written", "unchanged", "stale", "failed"]


@dataclass(slots=True, frozen=True)
class GenerateOutcome:
    """What ``generate()`` did.

    ``status``: ``written`` (the file changed), ``unchanged`` (already current),
    ``stale`` (``check=True`` and the file is missing or differs; nothing written),
    ``failed`` (scan errors; nothing written).
    """

    status: Status
    registry: Path
    routes: int = 0
    errors: tuple[ConfigError, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status in ("written", "unchanged")


def generate(root: Path, check: bool = False) -> GenerateOutcome:
    """Scan ``root/handlers`` and write the registry if its content changed.

    With ``check=True`` nothing is written; the outcome says whether the file on
    disk is what ``generate`` would write.
    """
    registry = registry_file(root)
    result = scan(root)
    warnings = tuple(result.warnings)
    if result.errors:
        return GenerateOutcome("failed", registry, 0, tuple(result.errors), warnings)
    content = render(result.handlers).encode("utf-8")
    routes = len(result.handlers)
    current = registry.is_file() and registry.read_bytes() == content
    if check:
        return GenerateOutcome("unchanged" if current else "stale", registry, routes, (), warnings)
    registry.parent.mkdir(parents=True, exist_ok=True)
    (registry.parent / "__init__.py").touch(exist_ok=True)
    if current:
        return GenerateOutcome("unchanged", registry, routes, (), warnings)
    _write_atomically(registry, content)
    return GenerateOutcome("written", registry, routes, (), warnings)


def is_stale(root: Path) -> bool:
    """Whether ``generated/registry.py`` is missing or differs from what the handlers give.

    A project whose handler files have errors counts as stale: no current
    registry can exist for it.
    """
    return not generate(root, check=True).ok


def report(outcome: GenerateOutcome) -> None:
    """Print an outcome as the CLI does, and exit non-zero unless it is ``ok``.

    Raises:
        typer.Exit: code 1 on handler errors or a stale registry.
    """
    for warning in outcome.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if outcome.status == "failed":
        for error in outcome.errors:
            typer.echo(str(error), err=True)
        count = len(outcome.errors)
        typer.echo(f"{REGISTRY} not written: {count} error{'s' * (count != 1)}", err=True)
        raise typer.Exit(EXIT_CONFIG_ERROR)
    if outcome.status == "stale":
        typer.echo(STALE_MESSAGE, err=True)
        raise typer.Exit(EXIT_STALE)
    label = "written" if outcome.status == "written" else "up to date"
    typer.echo(f"{REGISTRY}: {outcome.routes} route{'s' * (outcome.routes != 1)} ({label})")


def generate_command(
    check: Annotated[
        bool,
        typer.Option("--check", help="Write nothing; exit 1 if the registry is stale (for CI)."),
    ] = False,
    root: RootOption = Path("."),
) -> None:
    """Register the handler files: write generated/registry.py from handlers/."""
    report(generate(root, check=check))


def _write_atomically(file: Path, content: bytes) -> None:
    """Replace ``file`` in one step, so that a server reloading on change never reads half."""
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        # mkstemp makes the file 0600; give it the mode a plain write would have.
        os.chmod(tmp, file.stat().st_mode & 0o777 if file.exists() else 0o666 & ~_umask())
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
