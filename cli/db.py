"""``wsgen db``: the database schema (SPEC §8: schema changes are migrations)."""

from __future__ import annotations

import typer

from core.errors import ConfigError, StoreUnavailable
from core.settings import load_settings
from core.store.migrate import upgrade

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_command() -> None:
    """Migrate the database at WSGEN_DATABASE_URL to the latest schema."""
    try:
        revision = upgrade(load_settings().database_url)
    except (ConfigError, StoreUnavailable) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"database at revision {revision} (head)")
