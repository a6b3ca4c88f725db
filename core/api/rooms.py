"""Chat rooms for the platform's services, behind the API key (SPEC §10).

Store errors become responses in ``core.api.http.store_error_handler``:
an unknown room is 404, an existing id 409, an unavailable store 503.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.api.http import parse_body, parse_path, require_api_key
from core.api.spec import Operation, Reply, errors
from core.channels import chat_room
from core.close_codes import CloseCode
from core.models import ChatRoom, RoomId, UserId


class CreateRoom(BaseModel):
    """A room to create; the server generates a UUID when ``id`` is absent."""

    model_config = ConfigDict(extra="forbid")

    id: RoomId | None = None
    participants: list[UserId] = Field(max_length=10_000)


async def create_room(request: Request) -> Response:
    """Create a chat room with its participants."""
    services = require_api_key(request)
    body = await parse_body(request, CreateRoom)
    room = await services.store.create_room(body.id, body.participants)
    return JSONResponse(room.to_wire(), 201)


class ParticipantPath(BaseModel):
    room: RoomId
    userId: UserId


async def add_participant(request: Request) -> Response:
    """Add a participant (idempotent); they may connect to the room at once."""
    services = require_api_key(request)
    path = parse_path(request, ParticipantPath)
    await services.store.add_participant(path.room, path.userId)
    return Response(status_code=204)


async def remove_participant(request: Request) -> Response:
    """Remove a participant; their connections to the room close with 4403 on every process."""
    services = require_api_key(request)
    path = parse_path(request, ParticipantPath)
    room_id, user_id = path.room, path.userId
    await services.store.remove_participant(room_id, user_id)
    await services.hub.close_user_in_channel(
        chat_room(room_id), user_id, CloseCode.REMOVED, "removed from the room"
    )
    return Response(status_code=204)


PARTICIPANT = "/api/internal/chat-rooms/{room}/participants/{userId}"
operations = [
    Operation(
        "POST",
        "/api/internal/chat-rooms",
        create_room,
        "Create a chat room",
        {201: Reply("The room.", ChatRoom), **errors(401, 409, 422, 503)},
        security="serviceApiKey",
        body=CreateRoom,
        tags=("rooms",),
    ),
    Operation(
        "PUT",
        PARTICIPANT,
        add_participant,
        "Add a participant",
        {204: Reply("Added."), **errors(401, 404, 503)},
        security="serviceApiKey",
        tags=("rooms",),
    ),
    Operation(
        "DELETE",
        PARTICIPANT,
        remove_participant,
        "Remove a participant",
        {
            204: Reply("Removed; their room connections are closed with 4403."),
            **errors(401, 404, 503),
        },
        security="serviceApiKey",
        tags=("rooms",),
    ),
]
