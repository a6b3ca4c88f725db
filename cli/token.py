"""``wsgen token``: a signed token for local use, with the server's own secret."""

from __future__ import annotations

from typing import Annotated

import typer

from core.dev_secrets import resolve_secrets
from core.errors import ConfigError
from core.settings import load_settings
from core.tokens import TokenCodec


def token_command(
    user_id: Annotated[str, typer.Argument(help="The user id (`sub` claim).")],
    ttl: Annotated[int, typer.Option("--ttl", min=1, help="Seconds until it expires.")] = 3600,
) -> None:
    """Print a signed bearer token for USER_ID."""
    typer.echo(mint(user_id, ttl))


def mint(user_id: str, ttl: int) -> str:
    """A token signed with the server's secret (the development one when none is set)."""
    try:
        settings = load_settings()
        secrets = resolve_secrets(settings)
        token = TokenCodec.from_settings(settings, secrets.jwt_secret).issue(user_id, ttl)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if secrets.created_file is not None:
        typer.echo(f"created development secrets in {secrets.created_file}", err=True)
    return token
