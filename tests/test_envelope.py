"""The envelope parser and encoder (SPEC §3)."""

from __future__ import annotations

import orjson
import pytest

from core.envelope import Inbound, ProtocolError, encode, error_frame, parse


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"type": "ping"}', Inbound("ping", None)),
        ('{"event": "ping"}', Inbound("ping", None)),
        (
            '{"type": "chat.message", "data": {"text": "hi"}, "ref": 7}',
            Inbound("chat.message", {"text": "hi"}, 7),
        ),
        (
            '{"event": "video.offer", "payload": {"sdp": "x"}, "ref": "r1", "to": "u2"}',
            Inbound("video.offer", {"sdp": "x"}, "r1", "u2"),
        ),
        ('{"type": "ping", "data": null}', Inbound("ping", None)),
    ],
)
def test_parse_accepts_both_forms(frame: str, expected: Inbound) -> None:
    """Both client forms parse to the same message, with ref and to kept."""
    assert parse(frame) == expected


@pytest.mark.parametrize(
    ("frame", "code", "ref"),
    [
        ("not json", "invalid_json", None),
        ("[1, 2]", "invalid_json", None),
        ('"ping"', "invalid_json", None),
        ("{}", "invalid_message", None),
        ('{"type": 3}', "invalid_message", None),
        ('{"type": ""}', "invalid_message", None),
        ('{"type": "a", "event": "a"}', "invalid_message", None),
        ('{"type": "a", "payload": {}, "ref": 1}', "invalid_message", 1),
        ('{"event": "a", "data": {}, "ref": "x"}', "invalid_message", "x"),
        ('{"type": "a", "data": [1]}', "invalid_message", None),
        ('{"type": "a", "data": "text"}', "invalid_message", None),
        ('{"type": "a", "ref": true}', "invalid_message", None),
        ('{"type": "a", "ref": {"x": 1}}', "invalid_message", None),
        ('{"type": "a", "to": 5, "ref": 2}', "invalid_message", 2),
    ],
)
def test_parse_rejects_bad_frames(frame: str, code: str, ref: object) -> None:
    """Each malformed frame gets its error code, with the ref when it was readable."""
    with pytest.raises(ProtocolError) as info:
        parse(frame)
    assert info.value.code == code
    assert info.value.ref == ref


def test_encode_is_the_server_envelope() -> None:
    """Server frames are {event, payload} JSON text."""
    assert orjson.loads(encode("pong", {"timestamp": "t"}).data) == {
        "event": "pong",
        "payload": {"timestamp": "t"},
    }


def test_error_frame_carries_ref_only_when_given() -> None:
    """An error names its code and message, and the client's ref if any."""
    assert orjson.loads(error_frame("invalid_json", "m").data) == {
        "event": "error",
        "payload": {"code": "invalid_json", "message": "m"},
    }
    assert orjson.loads(error_frame("unknown_event", "m", "r").data)["payload"]["ref"] == "r"


def test_refs_that_json_cannot_round_trip_are_refused() -> None:
    """An integer ref beyond 2^53 would come back changed: invalid_message instead."""
    with pytest.raises(ProtocolError) as info:
        parse('{"type": "ping", "ref": 123456789012345678901234567890}')
    assert info.value.code == "invalid_message"
    assert parse('{"type": "ping", "ref": 9007199254740993}').ref == 9007199254740993
