"""What users read with their own token: room history and notifications (SPEC §7, §10)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.access import RoomAccess, room_access
from core.api.http import HTTPError, parse_query, require_user
from core.api.spec import Operation, Reply, errors
from core.models import ChatMessage, Notification, Page


class PageQuery(BaseModel):
    """Newest first; pass the previous page's ``nextCursor`` as ``before`` for the next."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=200)
    before: str | None = Field(None, max_length=256)


class MessagePage(Page):
    items: list[ChatMessage] = Field(default_factory=list)


class NotificationPage(Page):
    items: list[Notification] = Field(default_factory=list)


async def room_messages(request: Request) -> Response:
    """A room's messages, newest first, for its participants."""
    services, user_id = require_user(request)
    query = parse_query(request, PageQuery)
    room_id = request.path_params["room"]
    access = await room_access(services.store, room_id, user_id)
    if access is RoomAccess.NO_SUCH_ROOM:
        raise HTTPError(404, "not_found", "no such chat room")
    if access is RoomAccess.NOT_A_PARTICIPANT:
        raise HTTPError(403, "forbidden", "not a participant of this chat room")
    try:
        page = await services.store.list_messages(room_id, query.limit, query.before)
    except ValueError as exc:
        raise HTTPError(422, "invalid_query", f"before: {exc}") from None
    return JSONResponse(page.to_wire())


async def my_notifications(request: Request) -> Response:
    """The user's notifications, newest first."""
    services, user_id = require_user(request)
    query = parse_query(request, PageQuery)
    try:
        page = await services.store.list_notifications(user_id, query.limit, query.before)
    except ValueError as exc:
        raise HTTPError(422, "invalid_query", f"before: {exc}") from None
    return JSONResponse(page.to_wire())


operations = [
    Operation(
        "GET",
        "/api/chat-rooms/{room}/messages",
        room_messages,
        "A room's message history",
        {200: Reply("One page, newest first.", MessagePage), **errors(401, 403, 404, 422, 503)},
        security="userToken",
        query=PageQuery,
        tags=("history",),
    ),
    Operation(
        "GET",
        "/api/notifications",
        my_notifications,
        "The user's notifications",
        {200: Reply("One page, newest first.", NotificationPage), **errors(401, 422, 503)},
        security="userToken",
        query=PageQuery,
        tags=("notifications",),
    ),
]
