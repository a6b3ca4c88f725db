"""The store contract the server codes against."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from core.models import ChatMessage, ChatRoom, Notification, Page


class Store(Protocol):
    """Persistence of chat rooms, chat messages and notifications.

    Errors: a database that is unreachable, locked or failing raises
    ``StoreUnavailable`` (nothing was written; answer ``unavailable``); ids
    longer than 128 characters, text with NUL characters, a limit below 1 and
    malformed cursors raise ``ValueError``.

    Durability: when ``save_message`` or ``create_notification`` returns, the
    record is committed in one transaction and survives a process crash (and,
    on the SQLite store, a power loss). When they raise, nothing was stored:
    never broadcast or acknowledge a message whose save raised.

    Paging: ``list_messages`` and ``list_notifications`` return the newest
    ``limit`` records first, in the order they were stored. ``next_cursor`` is
    an opaque URL-safe string, None on the last page; passing it as ``before``
    returns the next older page. Following cursors from the first page lists
    every record exactly once, even when many share a timestamp and while new
    records are added.

    Timestamps are aware UTC datetimes truncated to milliseconds, so a stored
    record equals the one sent on the wire.
    """

    async def close(self) -> None:
        """Release connections; idempotent."""
        ...

    async def ping(self) -> None:
        """Return when the database answers; raise ``StoreUnavailable`` otherwise."""
        ...

    async def create_room(self, room_id: str | None, participants: Sequence[str]) -> ChatRoom:
        """Create a room (a uuid4 id when None) with these participants, de-duplicated in order.

        Raises ``RoomExists`` when the id is taken.
        """
        ...

    async def room_exists(self, room_id: str) -> bool: ...

    async def is_participant(self, room_id: str, user_id: str) -> bool:
        """False also when the room does not exist."""
        ...

    async def participants(self, room_id: str) -> list[str]:
        """The room's participants by time added, then id; raises ``RoomNotFound``."""
        ...

    async def add_participant(self, room_id: str, user_id: str) -> None:
        """Idempotent; raises ``RoomNotFound``."""
        ...

    async def remove_participant(self, room_id: str, user_id: str) -> bool:
        """True if the user was a participant; raises ``RoomNotFound``."""
        ...

    async def save_message(self, room_id: str, sender: str, text: str) -> ChatMessage:
        """Store a text message from ``sender``, durably; raises ``RoomNotFound``."""
        ...

    async def list_messages(self, room_id: str, limit: int, before: str | None) -> Page:
        """A page of the room's ``ChatMessage`` items, newest first (empty for no such room)."""
        ...

    async def create_notification(
        self,
        user_id: str,
        type: str,
        title: str,
        message: str,
        related_entity_type: str | None = None,
        related_entity: str | None = None,
    ) -> Notification:
        """Store a notification for ``user_id``, durably."""
        ...

    async def list_notifications(self, user_id: str, limit: int, before: str | None) -> Page:
        """A page of the user's ``Notification`` items, newest first."""
        ...
