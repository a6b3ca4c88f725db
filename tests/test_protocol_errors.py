"""Envelope-level bad input on a real room connection (SPEC §3): answered, never fatal, private."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from core.testing import Client, RunningServer
from tests.conftest import create_room, room_members

MAX_MESSAGE_BYTES = 65536


@pytest.fixture
async def pair(
    server: RunningServer, api: httpx.AsyncClient
) -> AsyncIterator[tuple[Client, Client]]:
    """alice and bob connected to one room, the join announcements consumed."""
    room = await create_room(api, "alice", "bob")
    async with room_members(server, room, "alice", "bob") as (alice, bob):
        yield alice, bob


async def error_for(client: Client, frame: str) -> dict[str, Any]:
    """Send a raw text frame; the payload of the `error` it must be answered with."""
    await client.ws.send(frame)
    return await client.expect("error")


async def assert_unharmed(alice: Client, bob: Client) -> None:
    """The sender's connection still works and the other member received nothing."""
    await alice.assert_quiet()
    await bob.assert_quiet()


# Raw frame, expected code, expected ref in the answer (None: no ref readable).
CASES: list[tuple[str, str, str | int | None]] = [
    # invalid_json: not JSON, or not a JSON object
    ("not json", "invalid_json", None),
    ('{"type": "ping", "ref": "a"', "invalid_json", None),
    ("", "invalid_json", None),
    ('[{"type": "ping", "ref": "a"}]', "invalid_json", None),
    ("[]", "invalid_json", None),
    ('"ping"', "invalid_json", None),
    ("42", "invalid_json", None),
    ("null", "invalid_json", None),
    # invalid_message: no type/event
    ("{}", "invalid_message", None),
    ('{"ref": "r1"}', "invalid_message", "r1"),
    ('{"data": {}, "ref": "r2"}', "invalid_message", "r2"),
    ('{"payload": {}, "ref": 3}', "invalid_message", 3),
    # invalid_message: both forms mixed
    ('{"type": "ping", "event": "ping", "ref": "m1"}', "invalid_message", "m1"),
    ('{"type": "ping", "payload": {}, "ref": "m2"}', "invalid_message", "m2"),
    ('{"event": "ping", "data": {}, "ref": "m3"}', "invalid_message", "m3"),
    # invalid_message: the name is not a (non-empty) string
    ('{"type": 5, "ref": "t1"}', "invalid_message", "t1"),
    ('{"type": null, "ref": "t2"}', "invalid_message", "t2"),
    ('{"type": "", "ref": "t3"}', "invalid_message", "t3"),
    ('{"event": ["ping"], "ref": "t4"}', "invalid_message", "t4"),
    ('{"type": {"name": "ping"}, "ref": "t5"}', "invalid_message", "t5"),
    # invalid_message: data/payload not an object
    ('{"type": "chat.message", "data": "hello", "ref": "d1"}', "invalid_message", "d1"),
    ('{"type": "chat.message", "data": ["hello"], "ref": "d2"}', "invalid_message", "d2"),
    ('{"event": "chat.message", "payload": 5, "ref": "d3"}', "invalid_message", "d3"),
    ('{"type": "ping", "data": true, "ref": "d4"}', "invalid_message", "d4"),
    # invalid_message: ref of a wrong type (so it cannot be echoed)
    ('{"type": "ping", "ref": [1]}', "invalid_message", None),
    ('{"type": "ping", "ref": {"id": 1}}', "invalid_message", None),
    ('{"type": "ping", "ref": true}', "invalid_message", None),
    # invalid_message: `to` not a user id string
    ('{"type": "video.offer", "data": {}, "to": 5, "ref": "to1"}', "invalid_message", "to1"),
    # unknown_event, in both forms
    ('{"type": "nope", "ref": "u1"}', "unknown_event", "u1"),
    ('{"event": "chat.delete", "payload": {}, "ref": 7}', "unknown_event", 7),
    ('{"type": "notification.new", "data": {}}', "unknown_event", None),
]


@pytest.mark.parametrize(("frame", "code", "ref"), CASES, ids=[c[0][:40] for c in CASES])
async def test_bad_frame_is_answered_with_error(
    pair: tuple[Client, Client], frame: str, code: str, ref: str | int | None
) -> None:
    """Each bad frame gets one `error` with its code (and ref when readable); nothing else."""
    alice, bob = pair
    error = await error_for(alice, frame)
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert error.get("ref") == ref
    await assert_unharmed(alice, bob)


@pytest.mark.parametrize(
    ("event", "data", "field"),
    [
        ("chat.message", {}, "text"),
        ("chat.message", {"text": 5}, "text"),
        ("chat.message", {"text": None}, "text"),
        ("chat.message", {"text": ["hi"]}, "text"),
        ("chat.typing", {}, "isTyping"),
        ("chat.typing", {"isTyping": "yes"}, "isTyping"),
        ("auth.refresh", {}, "token"),
        ("auth.refresh", {"token": 5}, "token"),
    ],
)
async def test_invalid_payload_names_the_field(
    pair: tuple[Client, Client], event: str, data: dict[str, Any], field: str
) -> None:
    """Data failing the event's schema is `invalid_payload` whose message names the field."""
    alice, bob = pair
    reply = await alice.request(event, data, ref="p1")
    assert reply["event"] == "error", reply
    assert reply["payload"]["code"] == "invalid_payload"
    assert field in reply["payload"]["message"]
    assert reply["payload"]["ref"] == "p1"
    await assert_unharmed(alice, bob)


async def test_invalid_payload_in_the_event_form(pair: tuple[Client, Client]) -> None:
    """The `{event, payload}` form is validated the same way and the ref is echoed."""
    alice, bob = pair
    error = await error_for(alice, '{"event": "chat.message", "payload": {"text": 1}, "ref": 4}')
    assert error["code"] == "invalid_payload"
    assert error["message"].startswith("text")
    assert error["ref"] == 4
    await assert_unharmed(alice, bob)


async def test_error_without_ref_has_no_ack(pair: tuple[Client, Client]) -> None:
    """A bad message without ref gets exactly one `error` and no `ack`."""
    alice, bob = pair
    await alice.send("chat.message", {"text": ""})
    error = await alice.expect("error")
    assert error["code"] == "invalid_payload" and error.get("ref") is None
    await assert_unharmed(alice, bob)


@pytest.mark.parametrize("ref", ["abc", "", 0, -1, 2**40, 1.5])
async def test_string_and_number_refs_are_echoed(pair: tuple[Client, Client], ref: Any) -> None:
    """A ref that is a string or a number (SPEC §3) is echoed as is in the ack."""
    alice, bob = pair
    await alice.ws.send(orjson.dumps({"type": "ping", "ref": ref}).decode())
    await alice.expect("pong")
    assert await alice.expect("ack") == {"ref": ref}
    await assert_unharmed(alice, bob)


async def test_many_bad_frames_in_a_row_keep_the_connection(pair: tuple[Client, Client]) -> None:
    """A burst of bad frames is answered one error each, in order; the connection stays usable."""
    alice, bob = pair
    frames = [c[0] for c in CASES[:10]]
    for frame in frames:
        await alice.ws.send(frame)
    for frame, code, _ in CASES[:10]:
        assert (await alice.expect("error"))["code"] == code, frame
    reply = await alice.request("chat.message", {"text": "fine"}, ref="ok")
    assert reply["event"] == "ack"
    assert (await bob.expect("chat.message"))["message"] == "fine"
    await assert_unharmed(alice, bob)


# -- frames that close the connection -------------------------------------------------------


async def test_binary_frame_closes_with_1003(pair: tuple[Client, Client]) -> None:
    """A binary frame closes the sender with 1003; the other member hears only `user.left`."""
    alice, bob = pair
    await alice.ws.send(orjson.dumps({"type": "ping"}))  # bytes: a binary frame
    assert await alice.closed_with() == 1003
    assert (await bob.expect("user.left"))["userId"] == "alice"
    await bob.assert_quiet()


async def test_frame_over_the_size_limit_closes_with_1009(pair: tuple[Client, Client]) -> None:
    """A 70000-byte text frame closes the sender with 1009; the other member stays connected."""
    alice, bob = pair
    await alice.ws.send("x" * 70000)
    assert await alice.closed_with() == 1009
    assert (await bob.expect("user.left"))["userId"] == "alice"
    await bob.assert_quiet()


async def test_limit_counts_bytes_not_characters(pair: tuple[Client, Client]) -> None:
    """Fewer characters than the limit but more UTF-8 bytes is too big: 1009."""
    alice, bob = pair
    text = "é" * 40000  # 40000 characters, 80000 bytes
    assert len(text) < MAX_MESSAGE_BYTES < len(text.encode())
    await alice.send("chat.message", {"text": text})
    assert await alice.closed_with() == 1009
    assert (await bob.expect("user.left"))["userId"] == "alice"
    await bob.assert_quiet()


async def test_frame_under_the_size_limit_is_processed(pair: tuple[Client, Client]) -> None:
    """A frame just under the limit is not closed: it is handled (here, too long a text)."""
    alice, bob = pair
    frame = orjson.dumps({"type": "chat.message", "data": {"text": ""}, "ref": "big"})
    padding = MAX_MESSAGE_BYTES - len(frame) - 100
    big = orjson.dumps({"type": "chat.message", "data": {"text": "y" * padding}, "ref": "big"})
    assert len(big) < MAX_MESSAGE_BYTES
    error = await error_for(alice, big.decode())
    assert error["code"] == "invalid_payload" and error["ref"] == "big"
    assert error["message"].startswith("text")
    await assert_unharmed(alice, bob)
