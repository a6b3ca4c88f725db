"""Bearer-token authentication of the handshake (SPEC §4).

The token is read, in order, from ``Authorization: Bearer <token>``, from the
subprotocol pair ``["bearer", <token>]`` (browsers cannot set headers; the server
then selects ``bearer``), and from ``?token=`` only when ``WSGEN_QUERY_TOKEN`` is
on (query strings end up in proxy logs). A missing, malformed, badly signed or
expired token refuses the handshake with 401 before the upgrade.
"""

from __future__ import annotations

from core.context import Context
from core.errors import Reject
from core.tokens import InvalidToken, bearer_from_header
from core.ws import Middleware

BEARER_SUBPROTOCOL = "bearer"


def auth_middleware() -> Middleware:
    """Require a valid token; sets ``ctx.user_id`` and ``ctx.expires_at``."""

    async def authenticate(ctx: Context) -> None:
        token = bearer_token(ctx)
        if token is None:
            raise Reject(401, "unauthorized", "a bearer token is required")
        try:
            claims = ctx.services.tokens.verify(token)
        except InvalidToken as exc:
            raise Reject(401, "unauthorized", str(exc)) from None
        ctx.user_id = claims.user_id
        ctx.expires_at = claims.expires_at

    return authenticate


def bearer_token(ctx: Context) -> str | None:
    """The token the client presented, or None; selects the ``bearer`` subprotocol if used."""
    header = ctx.headers.get("authorization")
    if header is not None:
        try:
            return bearer_from_header(header)
        except InvalidToken as exc:
            raise Reject(401, "unauthorized", str(exc)) from None
    protocols = ctx.subprotocols
    if len(protocols) >= 2 and protocols[0] == BEARER_SUBPROTOCOL:
        ctx.subprotocol = BEARER_SUBPROTOCOL
        return protocols[1]
    if ctx.services.settings.query_token:
        return ctx.query_params.get("token") or None
    return None
