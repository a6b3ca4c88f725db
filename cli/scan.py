"""Find the handler files of a project and read their ``config`` statically.

``scan()`` parses ``handlers/*/ws.*.py`` with libcst and never imports or runs
them. It collects every problem of every file, so that one run of
``wsgen generate`` shows them all.
"""

from __future__ import annotations

import ast
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst
from libcst.metadata import MetadataWrapper

from cli.visitors import GatherHandlerConfigVisitor, HandlerConfig
from core.errors import ConfigError
from core.registry import HandlerEntry
from core.routing import parse_path

HANDLER_GLOB = "handlers/*/ws.*.py"
MODULE_PREFIX = "wsgen_handlers"

_NOT_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]")
_LIBCST_LOCATION = re.compile(r"^(?:parser|tokenizer) error: (?:error at \d+:\d+: )?")


@dataclass(slots=True, frozen=True)
class ScannedHandler:
    """One handler file as the scanner read it; ``line``/``col`` locate its ``config``."""

    path: str
    file: str
    module: str
    middleware: tuple[str, ...] = ()
    hooks: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    line: int = 1
    col: int = 1
    path_line: int = 1
    path_col: int = 1

    def entry(self) -> HandlerEntry:
        """The registry entry for this handler."""
        return HandlerEntry(
            self.path, self.file, self.module, self.middleware, self.hooks, self.events
        )


@dataclass(slots=True)
class ScanResult:
    """Handlers sorted by path; fatal ``errors``; ``warnings`` as ``file:line:col: message``."""

    handlers: list[ScannedHandler] = field(default_factory=list)
    errors: list[ConfigError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def module_name(file: str) -> str:
    """The synthetic module name a handler file is loaded under.

    ``handlers/comms/ws.chat-rooms.py`` becomes ``wsgen_handlers.comms.chat_rooms``:
    ``ws.<name>.py`` is not an importable name, so the registry loads each file by
    its location under this stable name.
    """
    parts = file.split("/")
    group, filename = parts[-2], parts[-1]
    name = filename.removeprefix("ws.").removesuffix(".py")
    return ".".join(
        (MODULE_PREFIX, _NOT_IDENTIFIER.sub("_", group), _NOT_IDENTIFIER.sub("_", name))
    )


def find_handler_files(root: Path) -> list[str]:
    """Paths of the handler files under ``root``, relative, posix and sorted."""
    return sorted(
        path.relative_to(root).as_posix() for path in root.glob(HANDLER_GLOB) if path.is_file()
    )


def scan(root: Path) -> ScanResult:
    """Read every handler file under ``root`` and check the routes together."""
    result = ScanResult()
    if not (root / "handlers").is_dir():
        result.errors.append(
            ConfigError(
                f"no handlers/ directory in {root}; run from the project root or pass --root"
            )
        )
        return result
    modules: dict[str, str] = {}
    for file in find_handler_files(root):
        module = module_name(file)
        if module in modules:
            result.errors.append(
                ConfigError(
                    f"loads as module {module!r} like {modules[module]}; rename one of them",
                    file,
                )
            )
            continue
        modules[module] = file
        config = _scan_file(root, file, result)
        if config is not None:
            result.handlers.append(_handler(file, module, config))
    result.handlers = _without_collisions(result.handlers, result.errors)
    result.handlers.sort(key=lambda h: (h.path, h.file))
    result.errors.sort(key=lambda e: (e.file or "", e.line, e.col))
    return result


def _scan_file(root: Path, file: str, result: ScanResult) -> HandlerConfig | None:
    if not file.split("/")[-1].removeprefix("ws.").removesuffix(".py"):
        result.errors.append(ConfigError("handler file needs a name: ws.<name>.py", file))
        return None
    source = (root / file).read_bytes()
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as error:
        result.errors.append(_syntax_error(file, source, error))
        return None
    except (SyntaxError, UnicodeDecodeError) as error:  # bad encoding declaration or bytes
        result.errors.append(ConfigError(f"cannot decode the file: {error}", file))
        return None
    visitor = GatherHandlerConfigVisitor(file)
    MetadataWrapper(module).visit(visitor)
    result.errors.extend(visitor.errors)
    result.warnings.extend(visitor.warnings)
    return visitor.config  # also when other errors were found: collisions are still checked


def _syntax_error(file: str, source: bytes, error: cst.ParserSyntaxError) -> ConfigError:
    """Locate a syntax error, preferring CPython's parser, which points at the culprit.

    libcst's native parser often reports the token after the problem (e.g. the next
    line for an unclosed parenthesis). ``ast.parse`` only parses; it runs nothing.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes etc. are not the error here
            ast.parse(source, file)
    except SyntaxError as precise:
        if precise.lineno is not None:
            return ConfigError(
                f"syntax error: {precise.msg}", file, precise.lineno, precise.offset or 1
            )
    except ValueError:  # e.g. null bytes on Python 3.11
        pass
    message = _LIBCST_LOCATION.sub("", error.message)
    return ConfigError(f"syntax error: {message}", file, error.editor_line, error.editor_column)


def _handler(file: str, module: str, config: HandlerConfig) -> ScannedHandler:
    return ScannedHandler(
        path=config.path,
        file=file,
        module=module,
        middleware=config.middleware,
        hooks=config.hooks,
        events=config.events,
        line=config.line,
        col=config.col,
        path_line=config.path_line,
        path_col=config.path_col,
    )


def _without_collisions(
    handlers: list[ScannedHandler], errors: list[ConfigError]
) -> list[ScannedHandler]:
    """Keep the first handler of each path shape; report the others at their path literal.

    ``/ws/a/:x`` and ``/ws/a/{y}`` collide: a request cannot tell them apart.
    """
    first: dict[tuple[str | None, ...], ScannedHandler] = {}
    kept: list[ScannedHandler] = []
    for handler in handlers:  # in file order, so "first" is stable
        shape = parse_path(handler.path).shape
        other = first.get(shape)
        if other is None:
            first[shape] = handler
            kept.append(handler)
            continue
        errors.append(
            ConfigError(
                f"path {handler.path!r} collides with {other.path!r} in {other.file}; "
                "give one of them a different path",
                handler.file,
                handler.path_line,
                handler.path_col,
            )
        )
    return kept
