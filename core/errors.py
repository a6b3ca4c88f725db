"""The exceptions wsgen raises, under one root.

    WsgenError
    ├── ConfigError      a handler file or setting is wrong; carries a location
    │   └── InvalidPath  a route path that cannot be served
    ├── Reject           a middleware refuses the handshake (HTTP status, before the upgrade)
    ├── ClientError      a message is refused: the client gets `error`, the connection stays
    ├── BrokerError      the broker (Redis) refused or could not do an operation
    │   └── BrokerUnavailable  the broker cannot be reached; local delivery goes on
    └── StoreError       the store refused or could not do an operation
        ├── StoreUnavailable  database unreachable, locked or failing: answer `unavailable`
        ├── RoomExists        create_room with an id that is taken
        ├── RoomNotFound      an operation on a chat room that does not exist
        └── InvalidRecord     a value the store cannot keep (also a ValueError)

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


class BrokerError(WsgenError):
    """Root of the errors raised by a broker (``core.brokers``)."""


class BrokerUnavailable(BrokerError):
    """The broker cannot be reached: other processes miss what is published meanwhile.

    The message names the operation and the error class, never a URL (it may hold a
    password). The broker reconnects by itself; callers log, count and go on.
    """


class StoreError(WsgenError):
    """Root of the errors raised by the store (``core.store``)."""


class StoreUnavailable(StoreError):
    """The database is unreachable, locked or failing; nothing was written.

    The message names the operation and the driver's error class, never user
    data; the driver's exception is chained as ``__cause__``. Callers answer
    ``unavailable`` (SPEC §6) and may retry later.
    """


class RoomExists(StoreError):
    """``create_room`` was given an id that another chat room already has."""

    def __init__(self, room_id: str) -> None:
        super().__init__(f"chat room {room_id!r} already exists; choose another id or omit it")
        self.room_id = room_id


class RoomNotFound(StoreError):
    """The chat room does not exist; create it first (``create_room``)."""

    def __init__(self, room_id: str) -> None:
        super().__init__(f"chat room {room_id!r} does not exist")
        self.room_id = room_id


class InvalidRecord(StoreError, ValueError):
    """A value the store refuses to keep: an id too long, text with NUL characters.

    The message starts with the field's name (``text: ...``), as 422 messages do.
    """
