"""The SQL store: SQLite (embedded default) or PostgreSQL, through SQLAlchemy Core.

Every write is one short transaction that starts with its write, so SQLite
takes its write lock up front (waiting ``busy_timeout``) and PostgreSQL needs
no read-then-write isolation.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, delete, exc, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.clock import now
from core.errors import ConfigError, InvalidRecord, RoomExists, RoomNotFound
from core.ids import new_id
from core.models import ChatMessage, ChatRoom, Notification, Page
from core.store.batch import GroupCommit, SqliteInserter, sqlalchemy_inserter
from core.store.engine import create_engine, is_sqlite, sqlite_file, unavailable
from core.store.lookups import SqliteLookups
from core.store.migrate import is_current_engine, upgrade_engine
from core.store.paging import CursorKind, check_limit, decode_cursor, make_page, page_query
from core.store.schema import (
    MAX_ID_LENGTH,
    chat_messages,
    chat_room_participants,
    chat_rooms,
    notifications,
)


def now_ms() -> datetime:
    """The current UTC time, truncated to what the wire shows (milliseconds)."""
    moment = now()
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _check_id(name: str, value: str) -> str:
    if not 0 < len(value) <= MAX_ID_LENGTH:
        raise InvalidRecord(f"{name}: must be 1 to {MAX_ID_LENGTH} characters long")
    return value


def _check_text(name: str, value: str) -> str:
    # PostgreSQL text cannot hold NUL; refuse it everywhere so that backends agree.
    if "\x00" in value:
        raise InvalidRecord(f"{name}: must not contain NUL characters")
    return value


def _message(row: Any) -> ChatMessage:
    return ChatMessage(
        id=row.id,
        chat_room=row.chat_room,
        sender=row.sender,
        timestamp=row.timestamp,
        message_type=row.message_type,
        message=row.message,
        video_call_data=row.video_call_data,
        created_at=row.created_at,
        updated_at=row.updated_at,
        created_by=row.created_by,
        updated_by=row.updated_by,
    )


def _notification(row: Any) -> Notification:
    return Notification(
        id=row.id,
        type=row.type,
        title=row.title,
        message=row.message,
        related_entity_type=row.related_entity_type,
        related_entity=row.related_entity,
        created_at=row.created_at,
    )


_MESSAGE_COLUMNS = (
    "id",
    "chat_room",
    "sender",
    "timestamp",
    "message_type",
    "message",
    "video_call_data",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
)


def _sqlite_time(moment: datetime) -> str:
    """How SQLAlchemy's SQLite dialect stores a UTC datetime (see schema.UtcDateTime)."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _message_params(row: dict[str, Any]) -> tuple[Any, ...]:
    # A message's three times are usually one datetime: format it once.
    formatted: dict[int, str] = {}
    params = []
    for name in _MESSAGE_COLUMNS:
        value = row[name]
        if isinstance(value, datetime):
            value = formatted.get(id(value)) or formatted.setdefault(id(value), _sqlite_time(value))
        params.append(value)
    return tuple(params)


class SqlStore:
    """A ``Store`` on a SQLAlchemy async engine; open it with :meth:`open`."""

    def __init__(
        self, engine: AsyncEngine, sqlite: Path | None = None, busy_timeout: float = 5.0
    ) -> None:
        self._engine = engine
        # The embedded store's hot paths bypass the async engine (see lookups.py, batch.py).
        self._lookups = SqliteLookups(sqlite, busy_timeout) if sqlite is not None else None
        self._sqlite_inserter = (
            SqliteInserter(
                sqlite,
                chat_messages,
                _MESSAGE_COLUMNS,
                _message_params,
                busy_timeout,
                "save_message",
            )
            if sqlite is not None
            else None
        )
        self._messages = GroupCommit(
            self._sqlite_inserter or sqlalchemy_inserter(engine, chat_messages, "save_message"),
            lambda row: RoomNotFound(row["chat_room"]),
        )

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        auto_upgrade: bool | None = None,
        busy_timeout: float = 5.0,
        connect_timeout: float = 10.0,
    ) -> SqlStore:
        """Connect to ``url`` and check, or upgrade, its schema.

        Args:
            url: ``sqlite[+aiosqlite]:///path.db`` or ``postgresql[+asyncpg]://…``.
            auto_upgrade: migrate to the latest schema first; default True for
                SQLite (the embedded store upgrades itself), False otherwise.
            busy_timeout: SQLite: seconds to wait for another writer's lock.
            connect_timeout: PostgreSQL: seconds to wait for a connection.

        Raises:
            ConfigError: a bad URL, or a schema that is not current and must not
                be upgraded here.
            StoreUnavailable: the database cannot be reached.
        """
        engine = create_engine(url, busy_timeout=busy_timeout, connect_timeout=connect_timeout)
        if auto_upgrade is None:
            auto_upgrade = is_sqlite(engine.url)
        try:
            if auto_upgrade:
                await upgrade_engine(engine)
            elif not await is_current_engine(engine):
                raise ConfigError("database schema is not current; run `wsgen db upgrade`")
        except BaseException:
            await engine.dispose()
            raise
        sqlite = sqlite_file(engine.url) if is_sqlite(engine.url) else None
        return cls(engine, sqlite, busy_timeout)

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def close(self) -> None:
        await self._messages.close()
        if self._lookups is not None:
            self._lookups.close()
        if self._sqlite_inserter is not None:
            self._sqlite_inserter.close()
        await self._engine.dispose()

    async def ping(self) -> None:
        with unavailable("ping"):
            async with self._engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

    async def create_room(self, room_id: str | None, participants: Sequence[str]) -> ChatRoom:
        if isinstance(participants, str):
            raise TypeError("participants must be a sequence of user ids, not a string")
        room_id = new_id() if room_id is None else _check_id("room_id", room_id)
        members = [_check_id("user_id", user) for user in dict.fromkeys(participants)]
        created = now_ms()
        with unavailable("create_room"):
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(insert(chat_rooms).values(id=room_id, created_at=created))
                    if members:
                        rows = [
                            {"room_id": room_id, "user_id": u, "added_at": created} for u in members
                        ]
                        await conn.execute(insert(chat_room_participants), rows)
            except exc.IntegrityError:
                raise RoomExists(room_id) from None
        return ChatRoom(id=room_id, participants=members, created_at=created)

    async def room_exists(self, room_id: str) -> bool:
        if self._lookups is not None:
            return self._lookups.room_exists(room_id)
        query = select(chat_rooms.c.id).where(chat_rooms.c.id == room_id)
        with unavailable("room_exists"):
            async with self._engine.connect() as conn:
                return (await conn.execute(query)).first() is not None

    async def is_participant(self, room_id: str, user_id: str) -> bool:
        if self._lookups is not None:
            return self._lookups.is_participant(room_id, user_id)
        p = chat_room_participants.c
        query = select(p.user_id).where(p.room_id == room_id, p.user_id == user_id)
        with unavailable("is_participant"):
            async with self._engine.connect() as conn:
                return (await conn.execute(query)).first() is not None

    async def participants(self, room_id: str) -> list[str]:
        p = chat_room_participants.c
        # One query answers both "does the room exist" and "who is in it".
        query = (
            select(chat_rooms.c.id, p.user_id)
            .select_from(chat_rooms.outerjoin(chat_room_participants))
            .where(chat_rooms.c.id == room_id)
            .order_by(p.added_at, p.user_id)
        )
        with unavailable("participants"):
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        if not rows:
            raise RoomNotFound(room_id)
        return [row.user_id for row in rows if row.user_id is not None]

    async def add_participant(self, room_id: str, user_id: str) -> None:
        _check_id("room_id", room_id)
        row = {"room_id": room_id, "user_id": _check_id("user_id", user_id), "added_at": now_ms()}
        with unavailable("add_participant"):
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(insert(chat_room_participants).values(**row))
            except exc.IntegrityError:
                # Either already a participant (primary key) or no such room (foreign key).
                if not await self.room_exists(room_id):
                    raise RoomNotFound(room_id) from None

    async def remove_participant(self, room_id: str, user_id: str) -> bool:
        p = chat_room_participants.c
        query = delete(chat_room_participants).where(p.room_id == room_id, p.user_id == user_id)
        with unavailable("remove_participant"):
            async with self._engine.begin() as conn:
                removed = (await conn.execute(query)).rowcount > 0
        if not removed and not await self.room_exists(room_id):
            raise RoomNotFound(room_id)
        return removed

    async def save_message(self, room_id: str, sender: str, text: str) -> ChatMessage:
        moment = now_ms()
        message = ChatMessage(
            id=new_id(),
            chat_room=_check_id("room_id", room_id),
            sender=_check_id("sender", sender),
            timestamp=moment,
            message_type="text",
            message=_check_text("text", text),
            video_call_data=None,
            created_at=moment,
            updated_at=moment,
            created_by=sender,
            updated_by=sender,
        )
        # Committed with whatever other messages are being saved at the same time.
        await self._messages.insert({name: getattr(message, name) for name in _MESSAGE_COLUMNS})
        return message

    async def list_messages(self, room_id: str, limit: int, before: str | None) -> Page:
        return await self._page("m", chat_messages, "chat_room", room_id, limit, before)

    async def create_notification(
        self,
        user_id: str,
        type: str,
        title: str,
        message: str,
        related_entity_type: str | None = None,
        related_entity: str | None = None,
    ) -> Notification:
        _check_id("user_id", user_id)
        _check_id("type", type)
        for name, value in (
            ("related_entity_type", related_entity_type),
            ("related_entity", related_entity),
        ):
            if value is not None:
                _check_id(name, value)
        notification = Notification(
            id=new_id(),
            type=type,
            title=_check_text("title", title),
            message=_check_text("message", message),
            related_entity_type=related_entity_type,
            related_entity=related_entity,
            created_at=now_ms(),
        )
        values = notification.model_dump() | {"user_id": user_id}
        with unavailable("create_notification"):
            async with self._engine.begin() as conn:
                await conn.execute(insert(notifications).values(**values))
        return notification

    async def list_notifications(self, user_id: str, limit: int, before: str | None) -> Page:
        return await self._page("n", notifications, "user_id", user_id, limit, before)

    async def _page(
        self, kind: CursorKind, table: Table, column: str, key: str, limit: int, before: str | None
    ) -> Page:
        """Newest first by ``seq``, ``limit`` rows older than the ``before`` cursor."""
        check_limit(limit)
        seq = None if before is None else decode_cursor(kind, before)
        query = page_query(table, column, key, limit, seq)
        with unavailable(f"list ({table.name})"):
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        return make_page(kind, rows, limit, _message if kind == "m" else _notification)
