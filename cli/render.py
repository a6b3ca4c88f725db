"""Render ``generated/registry.py`` (and other templates) with Jinja2.

The output must be byte-identical for the same handlers and already formatted
as ``ruff format`` would write it (line length 100), so that the file never
shows a diff that no handler change caused. Every value reaches the template
through the ``pystr`` / ``pyrepr`` filters, which write Python literals.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
REGISTRY_TEMPLATE = "registry.py.j2"
LINE_LENGTH = 100
INDENT = 4


class RouteLike(Protocol):
    """What the registry template reads: a ``ScannedHandler`` or a ``HandlerEntry``."""

    @property
    def path(self) -> str: ...
    @property
    def file(self) -> str: ...
    @property
    def module(self) -> str: ...
    @property
    def middleware(self) -> tuple[str, ...]: ...
    @property
    def hooks(self) -> tuple[str, ...]: ...
    @property
    def events(self) -> tuple[str, ...]: ...


def pystr(value: str) -> str:
    """A Python string literal for ``value``, quoted as ``ruff format`` quotes it.

    Double quotes, unless the text holds more double than single quotes. Anything
    outside printable ASCII is escaped as ``ascii()`` escapes it, so that the
    generated file is plain ASCII and its line widths are plain ``len()``.
    """
    if not isinstance(value, str):
        raise TypeError(f"pystr expects a str, got {type(value).__name__}")
    quote = "'" if value.count('"') > value.count("'") else '"'
    body = "".join(
        "\\" + ch if ch == quote else "\\\\" if ch == "\\" else ascii(ch)[1:-1] for ch in value
    )
    return quote + body + quote


def pyrepr(value: object, indent: int = 0, lead: int = 0) -> str:
    """A Python literal for a str, a tuple of literals, or ``None``/``bool``/``int``.

    A tuple is written on one line when it fits in ``LINE_LENGTH`` together with
    the ``indent`` of its line, the ``lead`` characters before it (e.g. ``hooks=``)
    and a trailing comma; otherwise one item per line, as ``ruff format`` does.
    One-item tuples keep their comma: ``("x",)``.
    """
    if isinstance(value, str):
        return pystr(value)
    if value is None or isinstance(value, bool | int):
        return repr(value)
    if isinstance(value, tuple | list):
        items = [pyrepr(item) for item in value]
        if not items:
            return "()"
        inline = "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
        if indent + lead + len(inline) + 1 <= LINE_LENGTH:
            return inline
        pad = " " * (indent + INDENT)
        return "(\n" + "".join(f"{pad}{item},\n" for item in items) + " " * indent + ")"
    raise TypeError(f"no Python literal for {type(value).__name__}")


@functools.cache
def environment() -> Environment:
    """The shared Jinja2 environment for ``templates/``, with the literal filters."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["pystr"] = pystr
    env.filters["pyrepr"] = pyrepr
    return env


def render(handlers: Iterable[RouteLike]) -> str:
    """The source of ``generated/registry.py`` for these handlers, sorted by path."""
    routes = sorted(handlers, key=lambda h: (h.path, h.file))
    source = environment().get_template(REGISTRY_TEMPLATE).render(handlers=routes)
    return "".join(_allow_long(line) for line in source.splitlines(keepends=True))


def _allow_long(line: str) -> str:
    """Mark a line that is too long only because a string literal is (strings are not split).

    Mirrors ruff's E501, which skips a line that is a single word or ends in a URL
    starting within the limit, so that no ``noqa`` is unused (RUF100).
    """
    text = line.rstrip("\n")
    chunks = text.split()
    if len(text) <= LINE_LENGTH or len(chunks) < 2:
        return line
    if "://" in chunks[-1] and len(text) - len(chunks[-1]) <= LINE_LENGTH:
        return line
    return text + "  # noqa: E501" + line[len(text) :]
