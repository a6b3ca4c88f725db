"""Database URLs, engines and the mapping of driver failures to ``StoreUnavailable``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from core.errors import ConfigError, StoreUnavailable

_EXAMPLES = "e.g. sqlite+aiosqlite:///wsgen.db or postgresql+asyncpg://user:password@host/db"
_ASYNC_DRIVERS = {
    "sqlite": ("sqlite+aiosqlite", {"", "aiosqlite"}),
    "postgresql": ("postgresql+asyncpg", {"", "asyncpg"}),
    "postgres": ("postgresql+asyncpg", {"", "asyncpg"}),
}

# What a broken, unreachable, locked or overloaded database raises. IntegrityError
# is a DBAPIError too: the operations that expect it catch it before this does.
_UNAVAILABLE = (exc.DBAPIError, exc.TimeoutError, exc.DisconnectionError, OSError)


def async_url(url: str) -> URL:
    """The URL with its async driver: ``sqlite://`` → aiosqlite, ``postgresql://`` → asyncpg.

    Raises:
        ConfigError: the URL is malformed or names another database or driver.
            The message never repeats the URL, which may hold a password.
    """
    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        raise ConfigError(f"WSGEN_DATABASE_URL is not a database URL; {_EXAMPLES}") from None
    backend, _, driver = parsed.drivername.partition("+")
    target = _ASYNC_DRIVERS.get(backend)
    if target is None or driver not in target[1]:
        raise ConfigError(
            f"WSGEN_DATABASE_URL: unsupported database {parsed.drivername!r}; {_EXAMPLES}"
        )
    return parsed.set(drivername=target[0])


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL, or None for an in-memory or URI database.

    Only meaningful for SQLite URLs (see :func:`is_sqlite`).
    """
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def create_engine(
    url: str, *, busy_timeout: float = 5.0, connect_timeout: float = 10.0
) -> AsyncEngine:
    """An async engine for ``url``; nothing is connected yet.

    SQLite: the parent directory is created, and every new connection gets
    ``busy_timeout`` (wait that long for a lock, then fail), WAL journaling,
    ``synchronous=FULL`` (a committed transaction survives a crash or power
    loss) and foreign keys. PostgreSQL: connections are checked before use and
    a connection attempt gives up after ``connect_timeout`` seconds.

    Raises:
        ConfigError: a bad URL, or a SQLite directory that cannot be created.
    """
    parsed = async_url(url)
    # Statement parameters are chat text and notification bodies: never in errors or logs.
    options: dict[str, Any] = {"hide_parameters": True}
    if not is_sqlite(parsed):
        options |= {"pool_pre_ping": True, "connect_args": {"timeout": connect_timeout}}
        return create_async_engine(parsed, **options)

    file = sqlite_file(parsed)
    if file is not None:
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(
                f"WSGEN_DATABASE_URL: cannot create the directory {str(file.parent)!r} "
                f"({error.strerror}); choose a writable location"
            ) from None
    engine = create_async_engine(parsed, **options)
    pragmas = (
        # First, so that switching to WAL waits for other connections' locks.
        f"PRAGMA busy_timeout = {max(0, round(busy_timeout * 1000))}",
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = FULL",
        "PRAGMA foreign_keys = ON",
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for pragma in pragmas:
                _execute_when_unlocked(cursor, pragma, busy_timeout)
        finally:
            cursor.close()

    return engine


def _execute_when_unlocked(cursor: Any, sql: str, timeout: float) -> None:
    """Execute, retrying "database is locked" for up to ``timeout`` seconds.

    SQLite's busy timeout does not apply where waiting could deadlock: two
    connections switching a new file to WAL at once (several workers starting, or
    ``wsgen db upgrade`` beside a server) both read it, and the one that does not get
    the write lock fails at once instead of waiting for it.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            cursor.execute(sql)
            return
        except Exception as error:
            if "database is locked" not in str(error) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(2 * delay, 0.1)


@contextmanager
def unavailable(operation: str) -> Iterator[None]:
    """Raise driver and network failures inside the block as ``StoreUnavailable``.

    The message names the operation and the error class only: driver messages
    can quote stored values.
    """
    try:
        yield
    except _UNAVAILABLE as error:
        cause = error.orig if isinstance(error, exc.DBAPIError) else error
        raise StoreUnavailable(
            f"database unavailable during {operation} ({type(cause).__name__}); try again later"
        ) from error
