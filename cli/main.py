"""The ``wsgen`` command: one module per command, composed here."""

from __future__ import annotations

import typer

from cli import db, new
from cli.client import client_command
from cli.generate import generate_command
from cli.routes import routes_command
from cli.serve import serve_command
from cli.token import token_command

app = typer.Typer(
    name="wsgen",
    help="Generate, inspect and serve the project's WebSocket handlers.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("generate")(generate_command)
app.add_typer(new.app, name="new")
app.command("routes")(routes_command)
app.command("serve")(serve_command)
app.command("token")(token_command)
app.add_typer(db.app, name="db")
app.command("client")(client_command)
