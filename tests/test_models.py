"""The hand-written hot-path forms of records agree with their pydantic definitions."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime, timedelta

from core.ids import new_id
from core.models import ChatMessage, WireModel


def message(**changes: object) -> ChatMessage:
    moment = datetime(2026, 11, 29, 10, 0, 0, 123000, tzinfo=UTC)
    fields: dict[str, object] = {
        "id": new_id(),
        "chat_room": "room-1",
        "sender": "alice",
        "timestamp": moment,
        "message": 'héllo "world"',
        "video_call_data": None,
        "created_at": moment,
        "updated_at": moment,
        "created_by": "alice",
        "updated_by": "alice",
    }
    return ChatMessage.model_validate(fields | changes)


def test_chat_message_to_wire_matches_pydantic() -> None:
    """Same keys, same order, same values as pydantic's camelCase JSON dump."""
    later = datetime(2026, 11, 29, 11, 0, 0, 0, tzinfo=UTC)
    for stored in (
        message(),
        message(updated_at=later, updated_by="bob"),
        message(created_at=later - timedelta(hours=2), video_call_data={"a": 1}),
    ):
        fast = stored.to_wire()
        slow = WireModel.to_wire(stored)
        assert fast == slow
        assert list(fast) == list(slow)
    assert message().to_wire()["timestamp"] == "2026-11-29T10:00:00.123Z"


def test_new_id_is_a_time_ordered_uuid7() -> None:
    before_ms = time.time_ns() // 1_000_000
    ids = [new_id() for _ in range(2000)]  # crosses a refill of the random pool
    after_ms = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert before_ms <= parsed.int >> 80 <= after_ms
    # Ordered by time: a later millisecond never sorts before an earlier one.
    stamps = [uuid.UUID(text).int >> 80 for text in ids]
    assert stamps == sorted(stamps)


def test_new_id_differs_in_a_forked_child() -> None:
    """A child must not repeat its parent's ids (the random pool is reset at fork)."""
    new_id()  # the parent's pool is filled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.write(write, new_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    parent = new_id()
    assert child[14:] != parent[14:]  # the random parts differ
