"""The embedded store's hot reads, answered in the event loop's own thread.

Every handshake to a chat room asks "is this user a participant?". Through the
async engine that is a thread hand-off to aiosqlite plus SQLAlchemy's execution
machinery: about a third of a handshake's CPU time in the benchmark. A primary-key
lookup in a local SQLite file takes microseconds, and in WAL mode a reader never
waits for a writer, so these lookups run synchronously on a connection of their
own, which refuses writes (``query_only``). PostgreSQL keeps the async path.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from core.errors import StoreUnavailable

_IS_PARTICIPANT = "SELECT 1 FROM chat_room_participants WHERE room_id = ? AND user_id = ?"
_ROOM_EXISTS = "SELECT 1 FROM chat_rooms WHERE id = ?"


class SqliteLookups:
    def __init__(self, file: Path, busy_timeout: float) -> None:
        self._conn = sqlite3.connect(
            file, isolation_level=None, check_same_thread=False, cached_statements=16
        )
        self._conn.execute(f"PRAGMA busy_timeout = {max(0, round(busy_timeout * 1000))}")
        self._conn.execute("PRAGMA query_only = ON")

    def is_participant(self, room_id: str, user_id: str) -> bool:
        return self._one("is_participant", _IS_PARTICIPANT, (room_id, user_id))

    def room_exists(self, room_id: str) -> bool:
        return self._one("room_exists", _ROOM_EXISTS, (room_id,))

    def close(self) -> None:
        self._conn.close()

    def _one(self, operation: str, sql: str, params: tuple[str, ...]) -> bool:
        try:
            return self._conn.execute(sql, params).fetchone() is not None
        except sqlite3.Error as error:
            raise StoreUnavailable(
                f"database unavailable during {operation} ({type(error).__name__}); try again later"
            ) from error
