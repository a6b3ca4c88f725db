"""Channel names, ``<namespace>/<id>`` (SPEC §5), built in one place."""

from __future__ import annotations


def chat_room(room_id: str) -> str:
    """The channel of a chat room: its WebSocket members, publications, 4403 removals."""
    return f"chat-rooms/{room_id}"
