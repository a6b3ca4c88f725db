"""The records clients and services see, as pydantic models with camelCase JSON names.

One definition serves the WebSocket payloads, the HTTP API and its OpenAPI
document. Python code uses snake_case attributes; ``to_wire()`` gives the JSON
shape (camelCase, ISO timestamps) once, so a broadcast encodes it once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    computed_field,
    field_serializer,
)
from pydantic.alias_generators import to_camel

from core.clock import iso

RoomId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._~-]{1,128}$")]
"""A room id as the API accepts it: URL-safe, no escaping needed in a path."""
UserId = Annotated[str, StringConstraints(pattern=r"^[^\s/\x00-\x1f\x7f]{1,128}$")]
"""A user id: 1-128 characters, no whitespace, '/' or control characters."""


class WireModel(BaseModel):
    """Base of every record on the wire: camelCase names, ISO-8601 ``…Z`` timestamps."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid"
    )

    @field_serializer("*", when_used="json")
    def _timestamps(self, value: Any) -> Any:
        return iso(value) if isinstance(value, datetime) else value

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class ChatRoom(WireModel):
    id: str
    participants: list[str]
    created_at: datetime


class ChatMessage(WireModel):
    """A stored chat message (SPEC §6), as broadcast, acknowledged and listed in history.

    ``from`` and ``text`` repeat ``sender`` and ``message`` under the names the
    seed's client-integration code reads (``const { from, text } = payload``).
    """

    id: str
    chat_room: str
    sender: str
    timestamp: datetime
    message_type: Literal["text"] = "text"
    message: str
    video_call_data: dict[str, Any] | None = None
    created_at: datetime
    updated_at: datetime
    created_by: str
    updated_by: str

    @computed_field(alias="from")  # type: ignore[prop-decorator]
    @property
    def from_(self) -> str:
        return self.sender

    @computed_field  # type: ignore[prop-decorator]
    @property
    def text(self) -> str:
        return self.message

    def to_wire(self) -> dict[str, Any]:
        """The same dict as ``WireModel.to_wire``, built directly: this runs for every
        chat message, and pydantic's serializer took 6 µs of it (tests/test_models.py
        checks that both agree)."""
        timestamp = iso(self.timestamp)
        created = timestamp if self.created_at is self.timestamp else iso(self.created_at)
        updated = created if self.updated_at is self.created_at else iso(self.updated_at)
        return {
            "id": self.id,
            "chatRoom": self.chat_room,
            "sender": self.sender,
            "timestamp": timestamp,
            "messageType": self.message_type,
            "message": self.message,
            "videoCallData": self.video_call_data,
            "createdAt": created,
            "updatedAt": updated,
            "createdBy": self.created_by,
            "updatedBy": self.updated_by,
            "from": self.sender,
            "text": self.message,
        }


class Notification(WireModel):
    """A stored notification; the payload of ``notification.new`` (SPEC §6)."""

    id: str
    type: str
    title: str
    message: str
    related_entity_type: str | None = None
    related_entity: str | None = None
    created_at: datetime


class Page(WireModel):
    """One page of a list, newest first; ``next_cursor`` is None on the last page."""

    items: list[Any] = Field(default_factory=list)
    next_cursor: str | None = None
