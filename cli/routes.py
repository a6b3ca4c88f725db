"""``wsgen routes``: what the registry mounts, read without importing any handler."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.generate import is_stale
from cli.options import RootOption
from core.errors import ConfigError
from core.server import load_registry


def routes_command(root: RootOption = Path(".")) -> None:
    """List the registered routes with their middleware, hooks and events."""
    try:
        registry = load_registry(root)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if is_stale(root):
        typer.echo("warning: generated/registry.py is stale; run `wsgen generate`", err=True)
    for entry in registry.HANDLERS:
        typer.echo(entry.path)
        typer.echo(f"  file:       {entry.file}")
        typer.echo(f"  middleware: {', '.join(entry.middleware) or '-'}")
        typer.echo(f"  hooks:      {', '.join(entry.hooks) or '-'}")
        typer.echo(f"  events:     {', '.join(entry.events) or '-'}")
    if not registry.HANDLERS:
        typer.echo("no routes; add one with `wsgen new handler <module>/<name> --path /ws/...`")
