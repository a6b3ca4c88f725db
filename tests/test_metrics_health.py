"""/healthz, /readyz and /metrics on a real server (SPEC §7, §9).

Metrics are process-global (core/metrics.py), so every assertion compares a
scrape taken before with one taken after.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from core.api import health
from core.context import Context
from core.errors import StoreUnavailable
from core.settings import Settings
from core.testing import Client, RunningServer, bearer, connect, serve
from core.ws import Event, WebSocketHandler
from tests.conftest import create_room, room_members, room_path

ROOM_ROUTE = "/ws/comms/chat-rooms/:room"
FAMILIES = {
    "wsgen_connections_open": "gauge",
    "wsgen_messages_received": "counter",
    "wsgen_messages_sent": "counter",
    "wsgen_errors": "counter",
    "wsgen_broadcast_fanout_seconds": "histogram",
    "wsgen_handshakes_refused": "counter",
}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Scrape:
    """One /metrics answer: its raw text and its samples by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.types: dict[str, str] = {}
        self.samples: Samples = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for sample in family.samples:
                self.samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """A sample's value; 0 when the series does not exist yet."""
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(api: httpx.AsyncClient) -> Scrape:
    response = await api.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


def delta(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


async def refused_status(url: str, **kwargs: Any) -> int:
    """The HTTP status of a handshake the server refuses before the upgrade."""
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(url, open_timeout=5, **kwargs):
            pass
    return info.value.response.status_code


async def settled(api: httpx.AsyncClient, name: str, expected: float, **labels: str) -> Scrape:
    """Scrape until sample ``name{labels}`` reads ``expected`` (the server's clean-up after a
    client leaves runs after the client is gone); fails after 5 s."""
    async with asyncio.timeout(5):
        while True:
            now = await scrape(api)
            if now.value(name, **labels) == expected:
                return now
            await asyncio.sleep(0.01)


# -- health and readiness ---------------------------------------------------------------


async def test_healthz_is_200(api: httpx.AsyncClient) -> None:
    """/healthz answers 200 {"status": "ok"}."""
    response = await api.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_200_when_store_and_broker_answer(api: httpx.AsyncClient) -> None:
    """/readyz pings the store and the broker and reports both ok."""
    response = await api.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"store": "ok", "broker": "ok"}}


async def test_readyz_is_503_naming_the_store_when_it_is_down(
    server: RunningServer, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store whose ping fails makes /readyz 503 with the store named, the broker ok."""

    async def down() -> None:
        raise StoreUnavailable("ping failed: OperationalError")

    monkeypatch.setattr(server.services.store, "ping", down)
    response = await api.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"store": "unavailable", "broker": "ok"},
    }


async def test_readyz_is_503_naming_the_broker_when_it_is_down(
    server: RunningServer, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broker whose ping fails makes /readyz 503 with the broker named, the store ok."""

    async def down() -> None:
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(server.services.hub.backend.broker, "ping", down)
    response = await api.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"store": "ok", "broker": "unavailable"}


async def test_readyz_never_hangs_on_a_check_that_does_not_answer(
    server: RunningServer, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hanging store and broker pings time out (concurrently): 503 with both named timeout."""

    async def hang() -> None:
        await asyncio.sleep(60)

    monkeypatch.setattr(health, "CHECK_TIMEOUT", 0.3)
    monkeypatch.setattr(server.services.store, "ping", hang)
    monkeypatch.setattr(server.services.hub.backend.broker, "ping", hang)
    started = time.monotonic()
    response = await api.get("/readyz", timeout=5)
    assert time.monotonic() - started < 0.55  # both checks at once, not one after the other
    assert response.status_code == 503
    assert response.json()["checks"] == {"store": "timeout", "broker": "timeout"}


# -- metrics ------------------------------------------------------------------------------


async def test_metrics_exposes_every_family(api: httpx.AsyncClient) -> None:
    """/metrics is Prometheus text with each wsgen_* family, typed, and the route series bound."""
    now = await scrape(api)
    for name, kind in FAMILIES.items():
        assert now.types.get(name) == kind, name
    # Bound when the route was built, so a dashboard sees them at 0 before any traffic.
    assert ("wsgen_connections_open", (("route", ROOM_ROUTE),)) in now.samples
    for event in ("ping", "chat.message", "auth.refresh", "unknown", "invalid"):
        key = ("wsgen_messages_received_total", (("event", event), ("route", ROOM_ROUTE)))
        assert key in now.samples, event


async def test_a_client_session_moves_the_metrics(
    server: RunningServer, api: httpx.AsyncClient
) -> None:
    """Connections, received and sent events, protocol errors and refusals are all counted."""
    room = await create_room(api, "alice", "bob")
    before = await scrape(api)
    route = ROOM_ROUTE
    async with connect(server, room_path(room), "alice") as alice:
        await alice.expect("connected")
        during = await scrape(api)
        assert delta(before, during, "wsgen_connections_open", route=route) == 1

        await alice.send("ping")
        await alice.expect("pong")
        ack = await alice.request("chat.message", {"text": "hello"}, ref="m1")
        assert ack["event"] == "ack"
        await alice.ws.send("not json")
        assert (await alice.expect("error"))["code"] == "invalid_json"
        await alice.send("no.such.event")
        assert (await alice.expect("error"))["code"] == "unknown_event"

    status = await refused_status(
        server.ws_url(room_path(room)), additional_headers=bearer("not-a-token")
    )
    assert status == 401
    open_before = before.value("wsgen_connections_open", route=route)
    after = await settled(api, "wsgen_connections_open", open_before, route=route)

    received = "wsgen_messages_received_total"
    for event in ("ping", "chat.message", "unknown", "invalid"):
        assert delta(before, after, received, route=route, event=event) == 1, event
    assert delta(before, after, received, route=route, event="no.such.event") == 0

    sent = "wsgen_messages_sent_total"
    for event, count in (("connected", 1), ("pong", 1), ("ack", 1), ("error", 2)):
        assert delta(before, after, sent, event=event) == count, event

    errors = "wsgen_errors_total"
    for code in ("invalid_json", "unknown_event"):
        assert delta(before, after, errors, phase="protocol", code=code) == 1, code
    refused = "wsgen_handshakes_refused_total"
    assert delta(before, after, refused, route=route, status="401") == 1


async def test_a_broadcast_counts_its_recipients_and_its_fan_out_time(
    server: RunningServer, api: httpx.AsyncClient
) -> None:
    """One chat.message to two other connections: sent += 2, one fan-out observation."""
    room = await create_room(api, "alice", "bob")
    async with room_members(server, room, "alice", "bob", "bob") as (alice, bob1, bob2):
        before = await scrape(api)
        ack = await alice.request("chat.message", {"text": "hi both"}, ref="b1")
        assert ack["event"] == "ack"
        for bob in (bob1, bob2):
            assert (await bob.expect("chat.message"))["message"] == "hi both"
        after = await scrape(api)
    assert delta(before, after, "wsgen_messages_sent_total", event="chat.message") == 2
    assert delta(before, after, "wsgen_broadcast_fanout_seconds_count") == 1
    assert delta(before, after, "wsgen_broadcast_fanout_seconds_sum") > 0
    assert delta(before, after, "wsgen_broadcast_fanout_seconds_bucket", le="1.0") == 1


async def test_a_handshake_to_an_unknown_path_is_counted_as_unmatched_404(
    server: RunningServer, api: httpx.AsyncClient
) -> None:
    """A WebSocket handshake to a path no handler serves counts as route=unmatched, status=404."""
    before = await scrape(api)
    assert await refused_status(server.ws_url("/ws/no/such/route-xyz")) == 404
    after = await scrape(api)
    refused = "wsgen_handshakes_refused_total"
    assert delta(before, after, refused, route="unmatched", status="404") == 1
    assert "route-xyz" not in after.text


async def test_metrics_never_carry_chat_text_tokens_or_client_names(
    server: RunningServer, api: httpx.AsyncClient
) -> None:
    """Chat text, tokens, room ids and client-chosen event names never reach /metrics."""
    room = await create_room(api, "alice", "bob")
    text = "private-symptom-description-4711"
    token = server.token("alice")
    async with room_members(server, room, "alice", "bob") as (alice, bob):
        assert (await alice.request("chat.message", {"text": text}))["event"] == "ack"
        assert (await bob.expect("chat.message"))["message"] == text
        await alice.send("leak." + text)
        assert (await alice.expect("error"))["code"] == "unknown_event"
        await alice.ws.send(text)  # not JSON
        assert (await alice.expect("error"))["code"] == "invalid_json"
        await alice.send("auth.refresh", {"token": token})
        await alice.assert_quiet()
    bad_token = token[:-4] + "AAAA"
    status = await refused_status(
        server.ws_url(room_path(room)), additional_headers=bearer(bad_token)
    )
    assert status == 401
    raw = (await scrape(api)).text
    for secret in (text, token, bad_token, token.split(".")[1], room):
        assert secret not in raw


# -- hook failures ------------------------------------------------------------------------


async def fail(*_args: Any) -> None:
    raise RuntimeError("handler bug")


async def fail_in_middleware(ctx: Context) -> None:
    if ctx.query_params.get("fail") == "1":
        raise RuntimeError("middleware bug")


@pytest.fixture
async def failing(settings: Settings) -> AsyncIterator[tuple[RunningServer, httpx.AsyncClient]]:
    """A server whose only route fails in on_message, on_error and on_close (and on demand in
    its middleware)."""
    handler = WebSocketHandler(
        path="/ws/failing",
        middleware=[fail_in_middleware],
        on_close=fail,
        on_error=fail,
        events=[Event("boom", fail)],
    )
    async with (
        serve([handler], settings) as running,
        httpx.AsyncClient(base_url=running.http_url("")) as client,
    ):
        yield running, client


async def test_hook_failures_are_counted_by_phase(
    failing: tuple[RunningServer, httpx.AsyncClient],
) -> None:
    """Failures of each hook count under their phase with code exception, and the answer too."""
    server, api = failing
    before = await scrape(api)
    async with websockets.connect(server.ws_url("/ws/failing"), open_timeout=5) as ws:
        client = Client(ws)
        await client.send("boom")
        assert (await client.expect("error"))["code"] == "internal_error"
    assert await refused_status(server.ws_url("/ws/failing?fail=1")) == 500
    on_close = before.value("wsgen_errors_total", phase="on_close", code="exception")
    after = await settled(
        api, "wsgen_errors_total", on_close + 1, phase="on_close", code="exception"
    )

    errors = "wsgen_errors_total"
    for phase in ("on_message", "on_error", "on_close", "middleware"):
        assert delta(before, after, errors, phase=phase, code="exception") == 1, phase
    assert delta(before, after, errors, phase="protocol", code="internal_error") == 1
    refused = "wsgen_handshakes_refused_total"
    assert delta(before, after, refused, route="/ws/failing", status="500") == 1
    assert (
        delta(before, after, "wsgen_messages_received_total", route="/ws/failing", event="boom")
        == 1
    )
