"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

RootOption = Annotated[
    Path,
    typer.Option(
        "--root",
        help="Project directory (holds handlers/ and generated/).",
        file_okay=False,
        resolve_path=True,
    ),
]
