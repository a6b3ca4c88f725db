"""WebSocket route /ws/comms/chat-rooms/:room: chat and WebRTC call signaling (SPEC §6).

Members of a room share the channel `chat-rooms/<room>`. A chat message is
stored before anyone hears of it; typing and video signaling are relayed as they
come, never stored. Nothing a member sends comes back to the connection that
sent it; the sender's other connections do get it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from core import (
    ClientError,
    CloseCode,
    Connection,
    Context,
    Event,
    Inbound,
    InvalidRecord,
    StoreUnavailable,
    WebSocketHandler,
    now_iso,
)
from core.channels import chat_room
from middleware.auth import auth_middleware
from middleware.participants import participant_middleware, still_participant


class ChatMessageIn(BaseModel):
    text: StrictStr


class ChatTypingIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    is_typing: StrictBool = Field(alias="isTyping")


# RTCSessionDescriptionInit / RTCIceCandidateInit: any JSON object, relayed as is.
Signal = dict[str, Any]


def channel_of(ctx: Context) -> str:
    return chat_room(ctx.path_params["room"])


async def on_connect(ctx: Context, ws: Connection) -> None:
    """Join the room, tell the client who is online, and announce a newly present user."""
    hub = ctx.services.hub
    joined = await hub.join(channel_of(ctx), ws)
    await ws.send(
        "connected",
        {
            "roomId": ctx.path_params["room"],
            "userId": ctx.user_id,
            "timestamp": now_iso(),
            "online": joined.online,
        },
    )
    if joined.first:
        await hub.broadcast(
            channel_of(ctx),
            "user.joined",
            {"userId": ctx.user_id, "timestamp": now_iso()},
            exclude=ws.id,
        )
    # Joining, greeting and announcing happen with no store round trip in between, so
    # that concurrent joiners announce each other once. Then: was the user removed
    # between the participant check and the join? That removal's 4403 could not reach
    # a connection the hub did not know yet.
    if not await still_participant(ctx):
        await ws.close(CloseCode.REMOVED, "removed from the room")


async def on_close(ctx: Context, ws: Connection) -> None:
    """Leave the room; announce the user's departure when it was their last connection."""
    hub = ctx.services.hub
    if await hub.leave(channel_of(ctx), ws):
        assert ctx.user_id is not None
        await hub.announce_left(channel_of(ctx), ctx.user_id)


async def on_ping(ctx: Context, ws: Connection, message: Inbound) -> None:
    await ws.send("pong", {"timestamp": now_iso()})


async def on_chat_message(ctx: Context, ws: Connection, message: Inbound) -> dict[str, Any]:
    """Store the message durably, then broadcast it; the ack carries the stored message."""
    text = message.data.text.strip()
    limit = ctx.services.settings.chat_text_max
    if not 1 <= len(text) <= limit:
        raise ClientError(
            "invalid_payload", f"text: must be 1 to {limit} characters after trimming"
        )
    assert ctx.user_id is not None
    try:
        stored = await ctx.services.store.save_message(ctx.path_params["room"], ctx.user_id, text)
    except StoreUnavailable:
        raise ClientError("unavailable", "the message was not stored; send it again") from None
    except InvalidRecord as exc:  # e.g. NUL characters, which PostgreSQL cannot store
        raise ClientError("invalid_payload", str(exc)) from None
    wire = stored.to_wire()
    await ctx.services.hub.broadcast(channel_of(ctx), "chat.message", wire, exclude=ws.id)
    return {"message": wire}


async def on_chat_typing(ctx: Context, ws: Connection, message: Inbound) -> None:
    await ctx.services.hub.broadcast(
        channel_of(ctx),
        "chat.typing",
        {"from": ctx.user_id, "isTyping": message.data.is_typing},
        exclude=ws.id,
    )


async def on_video_signal(ctx: Context, ws: Connection, message: Inbound) -> None:
    """Relay an offer, answer or ICE candidate to the room, or only to the member named by `to`."""
    hub = ctx.services.hub
    channel = channel_of(ctx)
    if message.to is not None and message.to not in await hub.online(channel):
        raise ClientError("recipient_offline", "`to` is not connected to this room")
    await hub.broadcast(
        channel,
        message.event,
        {"type": message.event, "from": ctx.user_id, "data": message.data},
        exclude=ws.id,
        to_user=message.to,
    )


config = WebSocketHandler(
    path="/ws/comms/chat-rooms/:room",
    middleware=[auth_middleware(), participant_middleware("room")],
    on_connect=on_connect,
    on_close=on_close,
    events=[
        Event("ping", on_ping),
        # Pipelined: a burst is stored in one transaction and sent in one write per socket;
        # the store's group commit keeps each sender's messages in order.
        Event("chat.message", on_chat_message, model=ChatMessageIn, pipeline=True),
        Event("chat.typing", on_chat_typing, model=ChatTypingIn),
        Event("video.offer", on_video_signal, model=Signal),
        Event("video.answer", on_video_signal, model=Signal),
        Event("video.ice-candidate", on_video_signal, model=Signal),
    ],
)
