"""Running the project: load ``generated/registry.py`` and serve it with uvicorn.

``wsgen serve`` hands uvicorn the import string of :func:`app_from_environment`
(a factory), so that ``--reload`` and ``--workers`` can build the app in each
process; the project directory travels in ``WSGEN_PROJECT_DIR``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from core.app import create_app
from core.errors import ConfigError
from core.protocol import WsgenProtocol
from core.registry import load_module
from core.settings import Settings, load_settings
from core.upgrade import WsgenHttpProtocol

PROJECT_DIR_ENV = "WSGEN_PROJECT_DIR"
REGENERATE_ENV = "WSGEN_REGENERATE_ON_START"
REGISTRY_MODULE = "wsgen_generated_registry"


def registry_file(root: Path) -> Path:
    return root / "generated" / "registry.py"


def load_registry(root: Path) -> Any:
    """Import the generated registry of the project at ``root`` by its file location."""
    file = registry_file(root)
    if not file.exists():
        raise ConfigError(f"{file} does not exist; run `wsgen generate`")
    return load_module(file, REGISTRY_MODULE)


def app_from_registry(root: Path, settings: Settings | None = None) -> Starlette:
    registry = load_registry(root)
    return create_app(registry.load(), settings)


def app_from_environment() -> Starlette:
    """uvicorn factory: the app of the project named by ``WSGEN_PROJECT_DIR`` (default: cwd).

    In ``--reload`` mode the CLI sets ``WSGEN_REGENERATE_ON_START`` so that a changed
    handler file is re-scanned in each new worker before the registry is imported.
    """
    root = Path(os.environ.get(PROJECT_DIR_ENV, ".")).resolve()
    if os.environ.get(REGENERATE_ENV) == "1":
        from cli.generate import generate

        outcome = generate(root)
        if outcome.errors:
            # Fail this worker; the reloader starts a new one on the next change.
            raise ConfigError("handlers have errors:\n" + "\n".join(map(str, outcome.errors)))
    return app_from_registry(root)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn settings wsgen relies on, shared by ``wsgen serve`` and the tests.

    Frames over ``MAX_MESSAGE_BYTES`` are refused by the protocol layer with 1009.
    permessage-deflate is off: it costs CPU per message and tens of KiB of zlib
    state per connection, for small JSON frames that compress little.
    """
    return {
        "http": WsgenHttpProtocol,
        "ws": WsgenProtocol,
        "ws_max_size": settings.max_message_bytes,
        "ws_ping_interval": settings.ping_interval,
        "ws_ping_timeout": settings.ping_timeout,
        "ws_per_message_deflate": False,
        "timeout_graceful_shutdown": settings.shutdown_timeout,
        "lifespan": "on",
        "log_config": None,
        "access_log": False,
        "server_header": False,
    }


__all__ = [
    "PROJECT_DIR_ENV",
    "REGENERATE_ENV",
    "app_from_environment",
    "app_from_registry",
    "load_registry",
    "load_settings",
    "registry_file",
    "uvicorn_options",
]
