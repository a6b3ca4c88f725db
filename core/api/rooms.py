"""Chat rooms for the platform's services, behind the API key (SPEC §10).

Store errors become responses in ``core.api.http.store_error_handler``:
an unknown room is 404, an existing id 409, an unavailable store 503.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.api.http import parse_body, require_api_key
from core.close_codes import CloseCode

RoomId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._~-]{1,128}$")]
UserId = Annotated[str, StringConstraints(pattern=r"^[^\s/]{1,128}$")]


class CreateRoomIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: RoomId | None = None
    participants: list[UserId] = Field(max_length=10_000)


def room_channel(room_id: str) -> str:
    return f"chat-rooms/{room_id}"


async def create_room(request: Request) -> Response:
    services = require_api_key(request)
    body = await parse_body(request, CreateRoomIn)
    room = await services.store.create_room(body.id, body.participants)
    return JSONResponse(room.to_wire(), 201)


async def add_participant(request: Request) -> Response:
    services = require_api_key(request)
    room_id, user_id = _room_and_user(request)
    await services.store.add_participant(room_id, user_id)
    return Response(status_code=204)


async def remove_participant(request: Request) -> Response:
    """Remove, then close that user's connections to the room with 4403 on every process."""
    services = require_api_key(request)
    room_id, user_id = _room_and_user(request)
    await services.store.remove_participant(room_id, user_id)
    await services.hub.close_user_in_channel(
        room_channel(room_id), user_id, CloseCode.REMOVED, "removed from the room"
    )
    return Response(status_code=204)


def _room_and_user(request: Request) -> tuple[str, str]:
    return request.path_params["room"], request.path_params["user_id"]


routes = [
    Route("/api/internal/chat-rooms", create_room, methods=["POST"]),
    Route(
        "/api/internal/chat-rooms/{room}/participants/{user_id}",
        add_participant,
        methods=["PUT"],
    ),
    Route(
        "/api/internal/chat-rooms/{room}/participants/{user_id}",
        remove_participant,
        methods=["DELETE"],
    ),
]
