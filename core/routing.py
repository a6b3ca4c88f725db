"""Route paths: parse, validate and convert the ``:name`` / ``{name}`` forms.

Shared by the scanner (which reports a bad path at its place in the handler
file) and the runtime (which mounts the path on Starlette as ``{name}``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import InvalidPath

_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# RFC 3986 pchar minus ':' (reserved here for parameters) and '%' (no escapes in route paths).
_STATIC_SEGMENT = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=@]+\Z")


@dataclass(slots=True, frozen=True)
class Segment:
    """One ``/``-separated part of a path: static text or a named parameter."""

    text: str
    is_param: bool


@dataclass(slots=True, frozen=True)
class RoutePath:
    """A validated route path."""

    source: str
    segments: tuple[Segment, ...]

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(s.text for s in self.segments if s.is_param)

    @property
    def starlette_path(self) -> str:
        """The path in Starlette's ``{name}`` syntax."""
        return "/" + "/".join(f"{{{s.text}}}" if s.is_param else s.text for s in self.segments)

    @property
    def shape(self) -> tuple[str | None, ...]:
        """The path with parameter names erased: two paths with one shape collide."""
        return tuple(None if s.is_param else s.text for s in self.segments)

    @property
    def specificity(self) -> tuple[int, ...]:
        """Sort key that puts static segments before parameters, position by position.

        Mounting routes in this order makes ``/ws/rooms/lobby`` win over
        ``/ws/rooms/:id`` whatever order the files were found in.
        """
        return tuple(1 if s.is_param else 0 for s in self.segments)


def parse_path(path: str) -> RoutePath:
    """Parse and validate a route path such as ``/ws/comms/chat-rooms/:room``.

    Raises:
        InvalidPath: with the offset of the offending character.
    """
    if not path.startswith("/"):
        raise InvalidPath(f"path {path!r} must start with '/'", 0)
    if path == "/":
        return RoutePath(path, ())
    if path.endswith("/"):
        raise InvalidPath(f"path {path!r} must not end with '/'", len(path) - 1)
    segments: list[Segment] = []
    seen: set[str] = set()
    offset = 1
    for raw in path[1:].split("/"):
        if not raw:
            raise InvalidPath(f"path {path!r} has an empty segment ('//')", offset)
        segment = _parse_segment(path, raw, offset)
        if segment.is_param:
            if segment.text in seen:
                raise InvalidPath(
                    f"path {path!r} uses the parameter {segment.text!r} twice", offset
                )
            seen.add(segment.text)
        segments.append(segment)
        offset += len(raw) + 1
    return RoutePath(path, tuple(segments))


def _parse_segment(path: str, raw: str, offset: int) -> Segment:
    if raw.startswith(":"):
        name = raw[1:]
    elif raw.startswith("{") and raw.endswith("}"):
        name = raw[1:-1]
    elif _STATIC_SEGMENT.match(raw):
        return Segment(raw, is_param=False)
    else:
        bad = next((i for i, ch in enumerate(raw) if not _STATIC_SEGMENT.match(ch)), 0)
        raise InvalidPath(
            f"path {path!r}: segment {raw!r} has a character not allowed in a route "
            f"({raw[bad]!r}); parameters are written ':name' or '{{name}}'",
            offset + bad,
        )
    if not _PARAM_NAME.match(name):
        raise InvalidPath(
            f"path {path!r}: parameter {raw!r} needs a name made of letters, digits and '_'",
            offset,
        )
    return Segment(name, is_param=True)
