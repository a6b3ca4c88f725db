"""/ws/user end to end: connected, ping, send_to_user and the 4409 replacement (SPEC §5, §6)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.close_codes import CloseCode
from core.server import app_from_registry
from core.settings import Settings
from core.testing import RunningServer, connect, serve
from tests.conftest import ROOT, replacing


async def test_connected_then_pong(server: RunningServer) -> None:
    """The first frame is `connected` {userId, timestamp}; `ping` is answered with `pong`."""
    async with connect(server, "/ws/user", "alice") as alice:
        connected = await alice.expect("connected")
        assert set(connected) == {"userId", "timestamp"}
        assert connected["userId"] == "alice"
        await alice.assert_quiet()


async def test_send_to_user_reaches_only_that_user(server: RunningServer) -> None:
    """`hub.send_to_user` (the in-server call) delivers to that user's connection only."""
    payload = {"appointmentId": "a1", "providerId": "p1", "confirmedAt": "2026-11-29T10:00:00.000Z"}
    async with (
        connect(server, "/ws/user", "alice") as alice,
        connect(server, "/ws/user", "bob") as bob,
    ):
        await alice.expect("connected")
        await bob.expect("connected")
        await alice.assert_quiet()  # tracked once `connected` and a round trip are done
        await server.services.hub.send_to_user("alice", "appointment.confirmed", payload)
        assert await alice.expect("appointment.confirmed") == payload
        await bob.assert_quiet()


async def test_a_newer_connection_replaces_the_oldest_with_4409(server: RunningServer) -> None:
    """With the default limit of 1, a user's second connection closes the first with 4409."""
    async with replacing(
        connect(server, "/ws/user", "alice"), connect(server, "/ws/user", "alice")
    ) as second:
        await server.services.hub.send_to_user("alice", "notification.new", {"id": "n1"})
        assert (await second.expect("notification.new"))["id"] == "n1"


@pytest.fixture
async def server_two_per_user(settings: Settings) -> AsyncIterator[RunningServer]:
    two = settings.model_copy(update={"user_max_connections": 2})
    async with serve(app_from_registry(ROOT, two), two) as running:
        yield running


async def test_the_limit_is_a_setting(server_two_per_user: RunningServer) -> None:
    """USER_MAX_CONNECTIONS=2 keeps two connections and replaces the oldest on the third."""
    server = server_two_per_user
    async with (
        connect(server, "/ws/user", "alice") as one,
        connect(server, "/ws/user", "alice") as two,
    ):
        await one.expect("connected")
        await one.assert_quiet()
        await two.expect("connected")
        await two.assert_quiet()
        async with connect(server, "/ws/user", "alice") as three:
            await three.expect("connected")
            assert await one.closed_with() == CloseCode.REPLACED
            await two.assert_quiet()
            await three.assert_quiet()
