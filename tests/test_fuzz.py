"""Property-based fuzzing of everything a client can send (SPEC §3, §10).

Pure: the envelope parser and every schema, through the calls the server makes.
Against a real server: random frames on a real connection are answered with an `error`
of a known code or closed with a close code of SPEC §10, another client keeps being
served, and nothing is logged at level error.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import websockets
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from core.api.publish import (
    ChannelPath,
    ChannelPublication,
    CreateNotification,
    UserPath,
    _Envelope,
)
from core.api.rooms import CreateRoom, ParticipantPath
from core.api.user import PageQuery
from core.envelope import Inbound, ProtocolError, parse
from core.events import USER_EVENTS
from core.refresh import BUILTIN_EVENTS
from core.server import load_registry
from core.settings import Settings
from core.testing import Client, RunningServer, connect
from core.validation import describe
from core.ws import Event
from tests.conftest import (
    ROOT,
    LogCapture,
    create_room,
    project_server,
    room_path,
    service_client,
)

ENVELOPE_CODES = {"invalid_json", "invalid_message"}
# What bad input may be answered with (SPEC §3 and the README). `internal_error` and
# `unavailable` are server faults, never a fair answer to a client's bytes.
INPUT_ERROR_CODES = {
    "invalid_json",
    "invalid_message",
    "unknown_event",
    "invalid_payload",
    "rate_limited",
    "recipient_offline",
}
MAX_BYTES = 2048  # the fuzzed server's frame limit, so that oversized frames are cheap
SECRET = "S3CR3T-VALUE"  # planted in values: validation messages must not repeat it

# -- strategies ---------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
EVENT_NAMES = [
    "ping",
    "auth.refresh",
    "chat.message",
    "chat.typing",
    "video.offer",
    "video.answer",
    "video.ice-candidate",
    "notification.new",
]
FIELD_NAMES = ["text", "isTyping", "is_typing", "token", "type", "sdp", "candidate", SECRET]


near_valid = st.one_of(
    st.fixed_dictionaries({"text": st.text(max_size=60)}),
    st.fixed_dictionaries({"isTyping": st.booleans() | scalars}),
    st.fixed_dictionaries({"token": st.text(max_size=60)}),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["offer", "answer"]), "sdp": st.text(max_size=200)}
    ),
    st.fixed_dictionaries({"candidate": st.text(max_size=100), "sdpMLineIndex": scalars}),
)


@st.composite
def payloads(draw: st.DrawFn) -> Any:
    """Data close to an event's schema, objects with its field names and any values, or any
    JSON value at all."""
    shaped = st.dictionaries(st.sampled_from(FIELD_NAMES), json_values | st.just(SECRET))
    return draw(st.one_of(near_valid, near_valid, shaped, json_values))


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    """Objects shaped like client envelopes, of either form, often slightly wrong."""
    name_key, data_key = draw(st.sampled_from([("type", "data"), ("event", "payload")]))
    obj: dict[str, Any] = {}
    if draw(st.integers(0, 9)) > 0:  # mostly named, mostly with a known name
        names = st.sampled_from(EVENT_NAMES)
        obj[name_key] = draw(st.one_of(names, names, names, json_values))
    if draw(st.integers(0, 3)) > 0:
        obj[data_key] = draw(payloads())
    if draw(st.booleans()):
        obj["ref"] = draw(
            st.one_of(st.text(max_size=20), st.integers(), st.integers(), json_values)
        )
    if draw(st.integers(0, 4)) == 0:
        obj["to"] = draw(st.sampled_from(["observer", "nobody"]) | json_values)
    if draw(st.integers(0, 19)) == 0:  # both forms mixed
        obj["payload" if data_key == "data" else "data"] = {}
    return obj


def dumps(value: Any) -> str:
    """JSON text; the standard library's, which writes integers of any size."""
    return json.dumps(value, ensure_ascii=False)


envelope_text = envelopes().map(dumps)
json_text = envelope_text | json_values.map(dumps)
# Text a client can put in a frame (valid UTF-8: no lone surrogates), mostly envelopes.
client_text = st.one_of(
    envelope_text, envelope_text, envelope_text, json_text, st.text(max_size=200)
)


# -- pure: the parser ---------------------------------------------------------------------------


def check_parse(frame: str | bytes) -> Inbound | None:
    try:
        inbound = parse(frame)
    except ProtocolError as err:
        assert err.code in ENVELOPE_CODES
        assert err.message
        assert err.ref is None or isinstance(err.ref, str | int | float)
        return None
    assert isinstance(inbound, Inbound)
    assert isinstance(inbound.event, str) and inbound.event
    assert inbound.data is None or isinstance(inbound.data, dict)
    assert inbound.ref is None or isinstance(inbound.ref, str | int | float)
    assert not isinstance(inbound.ref, bool)
    assert inbound.to is None or isinstance(inbound.to, str)
    return inbound


@settings(max_examples=1000)
@given(st.one_of(client_text, st.text(st.characters(codec=None)), st.binary()))
def test_parse_returns_an_inbound_or_raises_a_protocol_error(frame: str | bytes) -> None:
    """Any text or bytes: an Inbound, or ProtocolError `invalid_json`/`invalid_message`."""
    check_parse(frame)


@settings(max_examples=600)
@given(envelopes())
def test_parse_reads_well_formed_envelopes(obj: dict[str, Any]) -> None:
    """A JSON object is refused only as `invalid_message`; accepted, its fields come through."""
    inbound = check_parse(dumps(obj))
    if inbound is not None:
        assert inbound.event in (obj.get("type"), obj.get("event"))


# -- pure: every schema, as the server calls it -------------------------------------------------


def route_events() -> list[Event]:
    events: dict[str, Event] = dict(BUILTIN_EVENTS)
    for handler in load_registry(ROOT).load():
        events.update(handler.event_table)
    # Events without a model take no data: the endpoint does not validate any.
    return [event for event in events.values() if event.adapter is not None]


EVENTS = route_events()


def expect_validation_error_only(validate: Any, value: Any) -> None:
    try:
        validate(value)
    except ValidationError as exc:
        message = describe(exc)
        assert isinstance(message, str) and message
        assert SECRET not in message.replace(f"{SECRET}:", "")  # a field name may be echoed


@settings(max_examples=300)
@given(st.sampled_from(EVENTS), st.none() | st.dictionaries(st.text(max_size=12), json_values))
def test_socket_event_schemas_raise_only_validation_errors(event: Event, data: Any) -> None:
    """Each route event's model, validated as RouteEndpoint does, raises only ValidationError."""
    assert event.adapter is not None
    expect_validation_error_only(event.adapter.validate_python, {} if data is None else data)


@settings(max_examples=400)
@given(st.sampled_from(EVENTS), payloads())
def test_socket_event_schemas_with_shaped_data(event: Event, data: Any) -> None:
    """Data with the schemas' own field names and any values: only ValidationError."""
    if isinstance(data, dict):
        assert event.adapter is not None
        expect_validation_error_only(event.adapter.validate_python, data)


@settings(max_examples=400)
@given(st.sampled_from(sorted(USER_EVENTS)), payloads())
def test_user_event_schemas_raise_only_validation_errors(event: str, payload: Any) -> None:
    """A user event's payload (as `POST .../events` validates it): only ValidationError."""
    expect_validation_error_only(USER_EVENTS[event].model_validate, payload)


BODY_MODELS: list[type[BaseModel]] = [
    _Envelope,
    ChannelPublication,
    CreateNotification,
    CreateRoom,
]
PARAM_MODELS: list[type[BaseModel]] = [ChannelPath, UserPath, ParticipantPath, PageQuery]
body_bytes = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: dumps(v).encode()),
    payloads().map(lambda v: dumps(v).encode()),
)


@settings(max_examples=400)
@given(st.sampled_from(BODY_MODELS), body_bytes)
def test_http_bodies_raise_only_validation_errors(model: type[BaseModel], body: bytes) -> None:
    """Any request body, parsed as `parse_body` does: the model or a ValidationError."""
    expect_validation_error_only(model.model_validate_json, body or b"null")


@settings(max_examples=300)
@given(
    st.sampled_from(PARAM_MODELS),
    st.dictionaries(
        st.sampled_from(["namespace", "id", "userId", "room", "limit", "before"]) | st.text(),
        st.text(max_size=300),
    ),
)
def test_http_parameters_raise_only_validation_errors(
    model: type[BaseModel], params: dict[str, str]
) -> None:
    """Path and query parameters (strings), as `parse_path`/`parse_query` do: ValidationError."""
    expect_validation_error_only(model.model_validate, params)


# -- against a real server ----------------------------------------------------------------------


@dataclass
class Fuzzed:
    server: RunningServer
    room: str
    observer: Client
    logs: LogCapture


@pytest.fixture(scope="module")
def module_logs() -> Iterator[LogCapture]:
    """Every log record of the module's examples (the `logs` fixture is per test)."""
    capture = LogCapture()
    logging.getLogger().addHandler(capture)
    try:
        yield capture
    finally:
        logging.getLogger().removeHandler(capture)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fuzzed(
    tmp_path_factory: pytest.TempPathFactory, module_logs: LogCapture
) -> AsyncIterator[Fuzzed]:
    """One server for every example, with a room where `observer` stays connected."""
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    base = Settings(
        secrets_file=tmp / "secrets.json",
        database_url=f"sqlite+aiosqlite:///{tmp / 'wsgen.db'}",
        _env_file=None,  # type: ignore[call-arg]
    )
    # The observer pings once per example, faster than the default rate allows.
    async with project_server(base, max_message_bytes=MAX_BYTES, rate_limit=1000) as server:
        async with service_client(server) as api:
            room = await create_room(api, "fuzzer", "observer")
        async with connect(server, room_path(room), "observer") as observer:
            await observer.expect("connected")
            yield Fuzzed(server, room, observer, module_logs)


async def sync(client: Client, ref: str) -> list[dict[str, Any]]:
    """Every frame before the ack of a `ping` sent now with ``ref``."""
    await client.send("ping", ref=ref)
    frames: list[dict[str, Any]] = []
    while True:
        frame = await client.recv()
        if frame["payload"].get("ref") == ref:
            assert frame["event"] == "ack", frame
            return frames
        frames.append(frame)


async def until_close(client: Client) -> tuple[list[dict[str, Any]], int | None]:
    """Every frame until the server closes, and its close code."""
    frames: list[dict[str, Any]] = []
    try:
        while True:
            frames.append(await client.recv())  # each receive times out after 5 s
    except websockets.ConnectionClosed as closed:
        return frames, closed.rcvd.code if closed.rcvd is not None else None


# A frame that ends the connection, and its close code (SPEC §10).
closing_frames = st.one_of(
    st.none(),
    st.binary(max_size=64).map(lambda b: (b, 1003)),
    st.text(min_size=MAX_BYTES + 1, max_size=MAX_BYTES + 64).map(lambda t: (t, 1009)),
)
counter = itertools.count()


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.timeout(120)
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    route=st.sampled_from(["room", "user"]),
    frames=st.lists(client_text.filter(lambda t: len(t.encode()) <= MAX_BYTES), max_size=8),
    closing=closing_frames,
)
async def test_random_frames_get_an_error_or_a_spec_close_code(
    fuzzed: Fuzzed, route: str, frames: list[str], closing: tuple[str | bytes, int] | None
) -> None:
    """Random frames get a known `error` or a SPEC §10 close; others served, no error logged."""
    n = next(counter)
    path = room_path(fuzzed.room) if route == "room" else "/ws/user"
    async with connect(fuzzed.server, path, "fuzzer") as fuzzer:
        assert (await fuzzer.expect("connected"))["userId"] == "fuzzer"
        for frame in frames:
            await fuzzer.ws.send(frame)
        if closing is None:
            replies = await sync(fuzzer, f"fuzz-{n}")
        else:
            await fuzzer.ws.send(closing[0])
            replies, code = await until_close(fuzzer)
            assert code == closing[1]
            event(f"closed {code}")
    for reply in replies:
        if reply["event"] == "error":
            assert reply["payload"]["code"] in INPUT_ERROR_CODES, reply
            event(f"error {reply['payload']['code']}")
        else:
            event(f"answered {reply['event']}")
    for frame in await sync(fuzzed.observer, f"observer-{n}"):
        assert frame["event"] != "error", frame
    errors = [r for r in fuzzed.logs.lines if r.get("level") in ("error", "critical")]
    assert not errors, errors
