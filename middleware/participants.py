"""Room access: the room must exist (else 404) and the user be a participant (else 403)."""

from __future__ import annotations

from core.access import RoomAccess, room_access
from core.context import Context
from core.errors import Reject, StoreUnavailable
from core.ws import Middleware


def participant_middleware(param: str = "room") -> Middleware:
    """Check the room named by path parameter ``param``; put after ``auth_middleware()``."""

    async def check_participant(ctx: Context) -> None:
        if ctx.user_id is None:
            raise Reject(401, "unauthorized", "a bearer token is required")
        try:
            access = await room_access(ctx.services.store, ctx.path_params[param], ctx.user_id)
        except StoreUnavailable:
            raise Reject(503, "unavailable", "the store is unavailable; retry") from None
        if access is RoomAccess.NO_SUCH_ROOM:
            raise Reject(404, "not_found", "no such chat room")
        if access is RoomAccess.NOT_A_PARTICIPANT:
            raise Reject(403, "forbidden", "not a participant of this chat room")

    return check_participant
