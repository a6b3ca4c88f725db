"""Room access: the room must exist (else 404) and the user be a participant (else 403)."""

from __future__ import annotations

from core.context import Context
from core.errors import Reject, StoreUnavailable
from core.ws import Middleware


def participant_middleware(param: str = "room") -> Middleware:
    """Check the room named by path parameter ``param``; put after ``auth_middleware()``."""

    async def check_participant(ctx: Context) -> None:
        room_id = ctx.path_params[param]
        if ctx.user_id is None:
            raise Reject(401, "unauthorized", "a bearer token is required")
        store = ctx.services.store
        try:
            # One indexed lookup on the common path; the room is looked up only to
            # tell 404 from 403.
            if await store.is_participant(room_id, ctx.user_id):
                return
            exists = await store.room_exists(room_id)
        except StoreUnavailable:
            raise Reject(503, "unavailable", "the store is unavailable; retry") from None
        if not exists:
            raise Reject(404, "not_found", "no such chat room")
        raise Reject(403, "forbidden", "not a participant of this chat room")

    return check_participant
