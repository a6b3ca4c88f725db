"""/ws/comms/chat-rooms/:room end to end: presence, chat, typing, signaling (SPEC §5, §6)."""

from __future__ import annotations

import re
import uuid

import httpx

from core.testing import RunningServer, connect
from tests.conftest import create_room, room_members, room_path

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")
CHAT_MESSAGE_FIELDS = {
    "id", "chatRoom", "sender", "timestamp", "messageType", "message", "videoCallData",
    "createdAt", "updatedAt", "createdBy", "updatedBy", "from", "text",
}  # fmt: skip


async def test_connected_lists_online_members_and_announces_joins_and_leaves(
    server: RunningServer, api: httpx.AsyncClient
) -> None:
    """`connected` carries roomId, userId, timestamp and online; others hear joined and left."""
    room = await create_room(api, "alice", "bob")
    async with connect(server, room_path(room), "alice") as alice:
        first = await alice.expect("connected")
        assert first["roomId"] == room and first["userId"] == "alice"
        assert ISO.match(first["timestamp"])
        assert first["online"] == ["alice"]
        async with connect(server, room_path(room), "bob") as bob:
            second = await bob.expect("connected")
            assert sorted(second["online"]) == ["alice", "bob"]
            joined = await alice.expect("user.joined")
            assert joined["userId"] == "bob" and ISO.match(joined["timestamp"])
            await bob.assert_quiet()  # bob does not hear of his own join
        left = await alice.expect("user.left")
        assert left["userId"] == "bob" and ISO.match(left["timestamp"])


async def test_a_second_connection_of_a_present_user_is_not_announced(
    server: RunningServer, api: httpx.AsyncClient
) -> None:
    """Presence is per user: a second tab is not announced; `online` lists users once."""
    room = await create_room(api, "alice", "bob")
    async with connect(server, room_path(room), "alice") as alice:
        await alice.expect("connected")
        async with connect(server, room_path(room), "bob") as bob1:
            await bob1.expect("connected")
            await alice.expect("user.joined")
            async with connect(server, room_path(room), "bob") as bob2:
                assert sorted((await bob2.expect("connected"))["online"]) == ["alice", "bob"]
                await alice.assert_quiet()
            await alice.assert_quiet()
        assert (await alice.expect("user.left"))["userId"] == "bob"


async def test_chat_message_is_stored_acked_and_broadcast_without_echo(
    server: RunningServer, api: httpx.AsyncClient
) -> None:
    """Three members: the sender gets the ack, the others the stored ChatMessage, no echo."""
    room = await create_room(api, "alice", "bob", "carol")
    async with room_members(server, room, "alice", "bob", "carol") as (alice, bob, carol):
        ack = await alice.request("chat.message", {"text": "  Hello!  "}, ref="m1")
        assert ack["event"] == "ack" and ack["payload"]["ref"] == "m1"
        stored = ack["payload"]["message"]
        assert set(stored) == CHAT_MESSAGE_FIELDS
        uuid.UUID(stored["id"])
        assert stored["chatRoom"] == room
        assert stored["sender"] == stored["createdBy"] == stored["updatedBy"] == "alice"
        assert stored["message"] == stored["text"] == "Hello!"  # trimmed
        assert stored["from"] == "alice"
        assert stored["messageType"] == "text" and stored["videoCallData"] is None
        for field in ("timestamp", "createdAt", "updatedAt"):
            assert ISO.match(stored[field])

        assert await bob.expect("chat.message") == stored
        assert await carol.expect("chat.message") == stored
        await alice.assert_quiet()  # no echo to the sending connection

        page = await server.services.store.list_messages(room, 10, None)
        assert [m.to_wire() for m in page.items] == [stored]


async def test_the_senders_other_connection_gets_the_message(
    server: RunningServer, api: httpx.AsyncClient
) -> None:
    """Echo prevention is by connection: the sender's second tab receives the message."""
    room = await create_room(api, "alice", "bob")
    async with room_members(server, room, "alice", "alice") as (tab1, tab2):
        await tab1.send("chat.message", {"text": "from tab 1"})
        assert (await tab2.expect("chat.message"))["message"] == "from tab 1"
        await tab1.assert_quiet()


async def test_chat_message_text_is_validated(
    server: RunningServer, api: httpx.AsyncClient
) -> None:
    """Missing, non-string, blank and over-long text: invalid_payload, nothing sent or stored."""
    room = await create_room(api, "alice", "bob")
    async with room_members(server, room, "alice", "bob") as (alice, bob):
        for data, field in [
            ({}, "text"),
            ({"text": 5}, "text"),
            ({"text": "   "}, "text"),
            ({"text": "x" * 4001}, "text"),
        ]:
            reply = await alice.request("chat.message", data, ref="bad")
            assert reply["event"] == "error", reply
            assert reply["payload"]["code"] == "invalid_payload"
            assert reply["payload"]["message"].startswith(f"{field}:")
            assert reply["payload"]["ref"] == "bad"
        ok = await alice.request("chat.message", {"text": "x" * 4000})
        assert ok["event"] == "ack"
        assert len((await bob.expect("chat.message"))["message"]) == 4000
        page = await server.services.store.list_messages(room, 10, None)
        assert len(page.items) == 1


async def test_typing_is_relayed_to_others_only(
    server: RunningServer, api: httpx.AsyncClient
) -> None:
    """chat.typing reaches the other members as {from, isTyping}, not the sender."""
    room = await create_room(api, "alice", "bob")
    async with room_members(server, room, "alice", "bob") as (alice, bob):
        await alice.send("chat.typing", {"isTyping": True})
        assert await bob.expect("chat.typing") == {"from": "alice", "isTyping": True}
        await alice.assert_quiet()
        reply = await alice.request("chat.typing", {"isTyping": "yes"})
        assert reply["payload"]["code"] == "invalid_payload"
        assert reply["payload"]["message"].startswith("isTyping:")


async def test_video_signals_are_relayed_to_all_or_to_one(
    server: RunningServer, api: httpx.AsyncClient
) -> None:
    """video.* reach the others as {type, from, data}; with `to`, only that member."""
    room = await create_room(api, "alice", "bob", "carol")
    offer = {"type": "offer", "sdp": "v=0\r\n"}
    candidate = {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}
    async with room_members(server, room, "alice", "bob", "carol") as (alice, bob, carol):
        await alice.send("video.offer", offer)
        expected = {"type": "video.offer", "from": "alice", "data": offer}
        assert await bob.expect("video.offer") == expected
        assert await carol.expect("video.offer") == expected

        ack = await bob.request("video.answer", {"type": "answer", "sdp": "v=0"}, to="alice")
        assert ack["event"] == "ack"
        await bob.request("video.ice-candidate", candidate, to="alice")
        assert (await alice.expect("video.answer"))["from"] == "bob"
        assert await alice.expect("video.ice-candidate") == {
            "type": "video.ice-candidate",
            "from": "bob",
            "data": candidate,
        }
        await carol.assert_quiet()  # addressed to alice only
        await bob.assert_quiet()

        reply = await alice.request("video.offer", offer, to="nobody")
        assert reply["payload"]["code"] == "recipient_offline"


async def test_ping_is_answered_to_the_sender_only(
    server: RunningServer, api: httpx.AsyncClient
) -> None:
    """`ping` in either envelope form gets `pong` {timestamp} on that connection only."""
    room = await create_room(api, "alice", "bob")
    async with room_members(server, room, "alice", "bob") as (alice, bob):
        await alice.ws.send('{"event": "ping"}')
        assert ISO.match((await alice.expect("pong"))["timestamp"])
        await alice.ws.send('{"type": "ping", "ref": 9}')
        await alice.expect("pong")
        assert await alice.expect("ack") == {"ref": 9}
        await bob.assert_quiet()


async def test_text_with_nul_is_invalid_payload(
    server: RunningServer, api: httpx.AsyncClient
) -> None:
    """Text the store cannot keep (NUL) is refused as invalid_payload, not internal_error."""
    room = await create_room(api, "alice", "bob")
    async with room_members(server, room, "alice", "bob") as (alice, bob):
        reply = await alice.request("chat.message", {"text": "a\x00b"})
        assert reply["payload"]["code"] == "invalid_payload"
        assert reply["payload"]["message"].startswith("text:")
        await bob.assert_quiet()
