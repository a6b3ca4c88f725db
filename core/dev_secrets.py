"""Development secrets: made on first start when ``WSGEN_JWT_SECRET``/``WSGEN_API_KEY`` are unset.

They live in one JSON file that only the owner can read (mode 0600), so the
server and ``wsgen token`` agree on the same secret without any set-up.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.errors import ConfigError
from core.settings import Settings


@dataclass(slots=True, frozen=True)
class Secrets:
    jwt_secret: str | None
    api_key: str
    created_file: Path | None = None  # set when this call wrote the file


def resolve_secrets(settings: Settings) -> Secrets:
    """The JWT secret and API key: from the settings, else from (or into) the secrets file."""
    needs_jwt = settings.jwt_secret is None and settings.jwt_algorithm.startswith("HS")
    if not needs_jwt and settings.api_key is not None:
        return Secrets(settings.jwt_secret, settings.api_key)
    path = settings.secrets_file
    stored, created = _read_or_create(path)
    return Secrets(
        jwt_secret=settings.jwt_secret or (stored["jwt_secret"] if needs_jwt else None),
        api_key=settings.api_key or stored["api_key"],
        created_file=path if created else None,
    )


def _read_or_create(path: Path) -> tuple[dict[str, str], bool]:
    """Create the file atomically: written in full under a temporary name, then linked.

    Two processes starting at once (workers, or ``wsgen token`` beside the server)
    agree on one file, and neither ever reads a half-written one.
    """
    values = {"jwt_secret": secrets.token_urlsafe(32), "api_key": secrets.token_urlsafe(32)}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(values, f)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return _read(path), False
    finally:
        os.unlink(tmp)
    return values, True


def _read(path: Path) -> dict[str, str]:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} holds secrets but others can read it; run `chmod 600 {path}`")
    try:
        values = json.loads(path.read_text())
        return {"jwt_secret": str(values["jwt_secret"]), "api_key": str(values["api_key"])}
    except (ValueError, KeyError, TypeError):
        raise ConfigError(
            f"{path} is not a wsgen secrets file; delete it to make new development secrets"
        ) from None
