"""The database schema as SQLAlchemy Core tables; migrations create exactly this.

Every ``seq`` column is an ever-increasing integer key: it orders a room's
history and a user's notifications, and cursors point at it. Timestamps are
timezone-aware UTC (``UtcDateTime``), truncated to milliseconds by the store.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

#: Longest id the store accepts (rooms, users, types, related entities).
MAX_ID_LENGTH = 128

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite makes only INTEGER PRIMARY KEY an alias of the rowid (autoincrementing);
# PostgreSQL gets a BIGSERIAL.
SeqType = BigInteger().with_variant(Integer, "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend.

    SQLite has no time zones: values are stored as UTC wall time and read back
    with ``tzinfo=UTC``; PostgreSQL stores ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _id(name: str, *args: Any, nullable: bool = False, **kw: Any) -> Column[str]:
    return Column(name, String(MAX_ID_LENGTH), *args, nullable=nullable, **kw)


chat_rooms = Table(
    "chat_rooms",
    metadata,
    _id("id", primary_key=True),
    Column("created_at", UtcDateTime, nullable=False),
    _id("created_by", nullable=True),
)

chat_room_participants = Table(
    "chat_room_participants",
    metadata,
    _id("room_id", ForeignKey("chat_rooms.id", ondelete="CASCADE"), primary_key=True),
    _id("user_id", primary_key=True),
    Column("added_at", UtcDateTime, nullable=False),
)

chat_messages = Table(
    "chat_messages",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    _id("chat_room", ForeignKey("chat_rooms.id", ondelete="CASCADE")),
    _id("sender"),
    Column("timestamp", UtcDateTime, nullable=False),
    Column("message_type", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("video_call_data", JSON(none_as_null=True), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    _id("created_by"),
    _id("updated_by"),
    Index(None, "chat_room", "seq"),
    # AUTOINCREMENT: SQLite never reuses a seq, even of a deleted last row.
    sqlite_autoincrement=True,
)

notifications = Table(
    "notifications",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    _id("user_id"),
    _id("type"),
    Column("title", Text, nullable=False),
    Column("message", Text, nullable=False),
    _id("related_entity_type", nullable=True),
    _id("related_entity", nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "user_id", "seq"),
    sqlite_autoincrement=True,
)
