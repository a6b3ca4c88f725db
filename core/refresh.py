"""What every authenticated connection supports: token expiry and ``auth.refresh``.

A token that expires while connected closes the connection with 4401, unless
the client sent ``auth.refresh {token}`` with a newer valid token for the same
user before then (SPEC §4): valid, same ``sub``, and an ``exp`` no earlier than the
current one (a token without ``exp`` cannot lift an expiry). The event is built
in: every route accepts it.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from core.connection import Connection
from core.context import Context
from core.envelope import Inbound
from core.errors import ClientError
from core.tokens import InvalidToken
from core.ws import Event


class RefreshIn(BaseModel):
    token: str = Field(min_length=1, max_length=8192)


async def on_auth_refresh(ctx: Context, ws: Connection, message: Inbound) -> None:
    if ctx.user_id is None:
        raise ClientError("unknown_event", "auth.refresh needs an authenticated route")
    data: RefreshIn = message.data
    try:
        claims = ctx.services.tokens.verify(data.token)
    except InvalidToken as exc:
        raise ClientError("invalid_payload", f"token: {exc}") from None
    if claims.user_id != ctx.user_id:
        raise ClientError("invalid_payload", "token: belongs to another user")
    if ctx.expires_at is not None and (
        claims.expires_at is None or claims.expires_at < ctx.expires_at
    ):
        raise ClientError("invalid_payload", "token: must not expire before the current one")
    ctx.expires_at = claims.expires_at
    ws.expire_at(claims.expires_at)


BUILTIN_EVENTS = {"auth.refresh": Event("auth.refresh", on_auth_refresh, model=RefreshIn)}
