"""``wsgen serve``: run the registry's routes with uvicorn."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn

import typer
import uvicorn

from cli.generate import generate, is_stale, report
from cli.options import RootOption
from core.brokers import check_broker_url
from core.errors import ConfigError
from core.logging import configure_logging
from core.server import PROJECT_DIR_ENV, REGENERATE_ENV, registry_file, uvicorn_options
from core.settings import load_settings


def serve_command(
    host: Annotated[str | None, typer.Option("--host", help="Default: WSGEN_HOST.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Default: WSGEN_PORT.")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Server processes.")] = 1,
    reload: Annotated[
        bool, typer.Option("--reload", help="Restart and regenerate when handlers change.")
    ] = False,
    root: RootOption = Path("."),
) -> None:
    """Serve the registered routes (uvicorn)."""
    try:
        settings = load_settings()
        check_broker_url(settings.broker_url)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if workers > 1 and settings.broker_url.startswith("memory://"):
        typer.echo(
            "error: --workers > 1 needs a shared broker: with the in-process broker each "
            "worker would see only its own connections. Set WSGEN_BROKER_URL=redis://...",
            err=True,
        )
        raise typer.Exit(1)
    if workers > 1 and reload:
        typer.echo("error: --reload runs one process; drop --workers", err=True)
        raise typer.Exit(1)

    if reload:
        report(generate(root))
    elif not registry_file(root).exists():
        typer.echo("error: generated/registry.py does not exist; run `wsgen generate`", err=True)
        raise typer.Exit(1)
    elif is_stale(root):
        typer.echo(
            "warning: generated/registry.py is stale (handlers changed); serving it as it is. "
            "Run `wsgen generate`, or `wsgen serve --reload` to regenerate on change.",
            err=True,
        )

    configure_logging(settings.log_format, settings.log_level)
    os.environ[PROJECT_DIR_ENV] = str(root)
    if reload:
        os.environ[REGENERATE_ENV] = "1"
    typer.echo("get a token for a client: wsgen token <user-id>", err=True)
    signal.signal(signal.SIGTERM, _stopped_by_sigterm)
    uvicorn.run(
        "core.server:app_from_environment",
        factory=True,
        host=host or settings.host,
        port=settings.port if port is None else port,
        workers=workers,
        reload=reload,
        reload_dirs=[str(root / "handlers")] if reload else None,
        reload_includes=["*.py"] if reload else None,
        **uvicorn_options(settings),
    )


def _stopped_by_sigterm(_signum: int, _frame: FrameType | None) -> NoReturn:
    """Exit 0 after a graceful shutdown on SIGTERM.

    While serving, uvicorn handles SIGTERM itself (stop accepting, close connections
    with 1001, wait up to ``WSGEN_SHUTDOWN_TIMEOUT``, run the lifespan exit). Then it
    restores the previous handler and raises the signal again, so that the process
    would end "killed by SIGTERM" (status 143). This handler is that previous one: a
    requested, completed shutdown is a success for process managers and CI alike.
    """
    raise SystemExit(0)
