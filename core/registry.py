"""What ``generated/registry.py`` is made of, and how it loads handler files.

The registry is written by ``wsgen generate`` from a static scan; it lists one
:class:`HandlerEntry` per handler file. Handler files are named ``ws.<name>.py``,
which is not an importable module name, so each is loaded from its file location
under a stable synthetic module name.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError

if TYPE_CHECKING:
    from core.ws import WebSocketHandler


@dataclass(slots=True, frozen=True)
class HandlerEntry:
    """One registered route, as the scanner saw it in its handler file.

    ``middleware``, ``hooks`` and ``events`` are the source text the scanner found,
    kept so that ``wsgen routes`` can describe a route without importing it.
    """

    path: str
    file: str
    module: str
    middleware: tuple[str, ...] = ()
    hooks: tuple[str, ...] = ()
    events: tuple[str, ...] = ()

    def load(self, root: Path) -> WebSocketHandler:
        """Import the handler file (relative to ``root``) and return its ``config``.

        The route is mounted at the path the file declares now; when that differs
        from the registry, ``wsgen serve`` has already warned that it is stale.
        """
        from core.ws import WebSocketHandler

        module = load_module(root / self.file, self.module)
        config: Any = getattr(module, "config", None)
        if isinstance(config, dict):
            config = WebSocketHandler(**config)
        if not isinstance(config, WebSocketHandler):
            raise ConfigError(
                f"`config` is a {type(config).__name__}, not a WebSocketHandler", self.file
            )
        return config


def load_module(file: Path, name: str) -> Any:
    """Execute a Python file as module ``name`` and return it.

    The module is put in ``sys.modules`` before it runs, as a normal import would,
    so that pydantic can resolve annotations that refer to names in it. A module
    of that name loaded from another file (another project, in tests) is replaced.
    """
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None) == str(file):
        return loaded
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load {file}", str(file))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
