"""The exceptions wsgen raises, under one root.

    WsgenError
    ├── ConfigError      a handler file or setting is wrong; carries a location
    │   └── InvalidPath  a route path that cannot be served
    ├── Reject           a middleware refuses the handshake (HTTP status, before the upgrade)
    └── ClientError      a message is refused: the client gets `error`, the connection stays

Messages say what to do, not only what went wrong.
"""

from __future__ import annotations


class WsgenError(Exception):
    """Root of every exception wsgen raises on purpose."""


class ConfigError(WsgenError):
    """A problem in a handler file or in the settings, reported as ``file:line:col: message``.

    ``line`` and ``col`` are 1-based, as editors and compilers print them.
    """

    def __init__(self, message: str, file: str | None = None, line: int = 1, col: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.col = col

    def __str__(self) -> str:
        if self.file is None:
            return self.message
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class InvalidPath(ConfigError):
    """A route path that is malformed; ``offset`` is the 0-based index of the bad character."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.offset = offset


class Reject(WsgenError):
    """Raised by a middleware to refuse a handshake with an HTTP status before the upgrade.

    Nothing is sent on the WebSocket; the client sees a plain HTTP response with
    ``{"error": code, "message": message}``.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class ClientError(WsgenError):
    """Raised by an event handler to answer the sender with an ``error`` event.

    The connection stays open; ``code`` is one of the protocol's error codes
    (SPEC §3), e.g. ``unavailable`` when the store cannot take a message.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
