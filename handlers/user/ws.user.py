"""WebSocket route /ws/user: a user's personal notifications (SPEC §6).

The platform pushes `notification.new` and `appointment.*` events here with
`send_to_user` (in the server) or `POST /api/internal/users/{userId}/events`.
A user has at most WSGEN_USER_MAX_CONNECTIONS connections here (default 1);
a newer one replaces the oldest, which is closed with 4409.
"""

from __future__ import annotations

from core import Connection, Context, Event, Inbound, WebSocketHandler, now_iso
from middleware.auth import auth_middleware


async def on_connect(ctx: Context, ws: Connection) -> None:
    """Confirm the connection, then start receiving the user's events."""
    await ws.send("connected", {"userId": ctx.user_id, "timestamp": now_iso()})
    await ctx.services.hub.track_user(ws, ctx.services.settings.user_max_connections)


async def on_ping(ctx: Context, ws: Connection, message: Inbound) -> None:
    """Answer the client's heartbeat."""
    await ws.send("pong", {"timestamp": now_iso()})


config = WebSocketHandler(
    path="/ws/user",
    middleware=[auth_middleware()],
    on_connect=on_connect,
    events=[
        Event("ping", on_ping),
    ],
)
