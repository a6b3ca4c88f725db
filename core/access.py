"""Who may enter a chat room: shared by the WebSocket middleware and the HTTP API."""

from __future__ import annotations

from enum import Enum

from core.store import Store


class RoomAccess(Enum):
    ALLOWED = "allowed"
    NO_SUCH_ROOM = "no_such_room"  # 404
    NOT_A_PARTICIPANT = "not_a_participant"  # 403


async def room_access(store: Store, room_id: str, user_id: str) -> RoomAccess:
    """One indexed lookup on the common path; the room is looked up only to tell 404 from 403.

    Raises:
        StoreUnavailable: the store cannot answer.
    """
    if await store.is_participant(room_id, user_id):
        return RoomAccess.ALLOWED
    if await store.room_exists(room_id):
        return RoomAccess.NOT_A_PARTICIPANT
    return RoomAccess.NO_SUCH_ROOM
