"""WebSocket route /ws/user.

Made by `wsgen new handler user/user`. Add an `Event` per message the
client may send, with a pydantic model for its data; run `wsgen generate` after
changing `path` or `middleware`.
"""

from __future__ import annotations

from core import Connection, Context, Event, Inbound, WebSocketHandler, now_iso
from middleware.auth import auth_middleware


async def on_connect(ctx: Context, ws: Connection) -> None:
    """Confirm the connection; the client's first message."""
    await ws.send(
        "connected",
        {
            "userId": ctx.user_id,
            "timestamp": now_iso(),
        },
    )


async def on_ping(ctx: Context, ws: Connection, message: Inbound) -> None:
    """Answer the client's heartbeat."""
    await ws.send("pong", {"timestamp": now_iso()})


async def on_close(ctx: Context, ws: Connection) -> None:
    """Runs once when the connection ends, whatever ended it."""


config = WebSocketHandler(
    path="/ws/user",
    middleware=[auth_middleware()],
    on_connect=on_connect,
    on_close=on_close,
    events=[
        Event("ping", on_ping),
    ],
)
