"""``wsgen new handler``: scaffold a handler file from the template, then regenerate."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from cli.generate import generate, report
from cli.options import RootOption
from cli.render import environment
from cli.scan import find_handler_files, module_name, scan
from core.errors import ConfigError
from core.routing import parse_path

app = typer.Typer(help="Create files from templates.", no_args_is_help=True)

_MODULE = re.compile(r"[a-z_][a-z0-9_]*\Z")
_NAME = re.compile(r"[a-z_][a-z0-9_-]*\Z")


@app.command("handler")
def new_handler(
    target: Annotated[
        str, typer.Argument(help="<module>/<name>: writes handlers/<module>/ws.<name>.py")
    ],
    path: Annotated[str, typer.Option("--path", help="Route path, e.g. /ws/rooms/:room")],
    root: RootOption = Path("."),
) -> None:
    """Write a working handler (auth, `connected`, ping/pong) and register it."""
    try:
        file = create_handler(root, target, path)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"created {file.relative_to(root).as_posix()}")
    report(generate(root))


def create_handler(root: Path, target: str, path: str) -> Path:
    """Render the handler template into ``handlers/<module>/ws.<name>.py``.

    Raises:
        ConfigError: bad target or path, the file exists, or the path collides with
            a registered route.
    """
    module, _, name = target.partition("/")
    if not _MODULE.match(module) or not _NAME.match(name):
        raise ConfigError(
            f"{target!r} must be <module>/<name>: a lowercase module (letters, digits, '_') "
            "and a name (letters, digits, '_', '-'), e.g. comms/chat-rooms"
        )
    route = parse_path(path)
    file = root / "handlers" / module / f"ws.{name}.py"
    relative = file.relative_to(root).as_posix()
    if file.exists():
        raise ConfigError(f"{relative} exists; refusing to overwrite it")
    for other in find_handler_files(root):
        if module_name(other) == module_name(relative):
            raise ConfigError(
                f"{relative} would load as the same module as {other}; choose another name"
            )
    for existing in scan(root).handlers:
        if parse_path(existing.path).shape == route.shape:
            raise ConfigError(f"{path!r} collides with {existing.path!r} in {existing.file}")
    source = (
        environment()
        .get_template("handler.py.j2")
        .render(path=path, params=route.params, module=module, name=name)
    )
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(source)
    return file
