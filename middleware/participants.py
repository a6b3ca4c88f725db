"""Room access: the room must exist (else 404) and the user be a participant (else 403)."""

from __future__ import annotations

from core.access import RoomAccess, room_access
from core.context import Context
from core.errors import Reject, StoreUnavailable
from core.ws import Middleware

_CHECKED_AT = "wsgen.participant_checked_at"
"""``ctx.state`` key: the hub's close count when the middleware asked the store."""


def participant_middleware(param: str = "room") -> Middleware:
    """Check the room named by path parameter ``param``; put after ``auth_middleware()``."""

    async def check_participant(ctx: Context) -> None:
        if ctx.user_id is None:
            raise Reject(401, "unauthorized", "a bearer token is required")
        closes = ctx.services.hub.closes  # before the store is asked: see still_participant
        try:
            access = await room_access(ctx.services.store, ctx.path_params[param], ctx.user_id)
        except StoreUnavailable:
            raise Reject(503, "unavailable", "the store is unavailable; retry") from None
        if access is RoomAccess.NO_SUCH_ROOM:
            raise Reject(404, "not_found", "no such chat room")
        if access is RoomAccess.NOT_A_PARTICIPANT:
            raise Reject(403, "forbidden", "not a participant of this chat room")
        ctx.state[_CHECKED_AT] = closes

    return check_participant


async def still_participant(ctx: Context, param: str = "room") -> bool:
    """Whether the user is still a participant, asked once the connection has joined.

    A removal that came between the middleware's check and the join closed no
    connection here: the hub did not know this one yet. With the in-process broker
    (one process) every removal goes through this process's hub, so when it handled
    no close request since the check, nothing was removed and the check still holds.
    Otherwise, or without the middleware's check, the store is asked again.
    """
    assert ctx.user_id is not None
    hub = ctx.services.hub
    checked_at = ctx.state.get(_CHECKED_AT)
    if checked_at is not None and checked_at == hub.closes and not hub.backend.shared:
        return True
    return await ctx.services.store.is_participant(ctx.path_params[param], ctx.user_id)
