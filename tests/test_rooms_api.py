"""The chat-room HTTP API for the platform's services (SPEC §10) and its effect on connections."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx
import orjson
import pytest
import websockets

from core.app import create_app
from core.server import load_registry
from core.settings import Settings
from core.store import Store, open_store
from core.testing import RunningServer, bearer, connect, serve
from tests.conftest import ROOT, create_room, room_path, service_client

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")
ROOMS = "/api/internal/chat-rooms"


def participant_url(room: str, user: str) -> str:
    return f"{ROOMS}/{room}/participants/{user}"


async def handshake_status(server: RunningServer, path: str, user: str) -> int:
    """The HTTP status the server refuses ``user``'s handshake on ``path`` with."""
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(
            server.ws_url(path), additional_headers=bearer(server.token(user)), open_timeout=5
        ):
            pass
    return info.value.response.status_code


# -- POST /api/internal/chat-rooms ---------------------------------------------------------


async def test_create_room_generates_an_id(server: RunningServer, api: httpx.AsyncClient) -> None:
    """Without an id: 201 {id (a UUID), participants, createdAt}; the room exists in the store."""
    response = await api.post(ROOMS, json={"participants": ["alice", "bob"]})
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "participants", "createdAt"}
    uuid.UUID(body["id"])
    assert sorted(body["participants"]) == ["alice", "bob"]
    assert ISO.match(body["createdAt"])
    assert await server.services.store.room_exists(body["id"])
    other = await api.post(ROOMS, json={"participants": ["alice"]})
    assert other.json()["id"] != body["id"]


async def test_create_room_keeps_a_given_id(server: RunningServer, api: httpx.AsyncClient) -> None:
    """A given id is kept, and the room serves at once on the WebSocket route."""
    response = await api.post(ROOMS, json={"id": "consult-42_a.b~c", "participants": ["alice"]})
    assert response.status_code == 201, response.text
    assert response.json()["id"] == "consult-42_a.b~c"
    async with connect(server, room_path("consult-42_a.b~c"), "alice") as alice:
        assert (await alice.expect("connected"))["roomId"] == "consult-42_a.b~c"


async def test_create_room_deduplicates_participants(api: httpx.AsyncClient) -> None:
    """A participant listed twice is a participant once."""
    response = await api.post(ROOMS, json={"participants": ["alice", "bob", "alice", "bob"]})
    assert response.status_code == 201, response.text
    participants = response.json()["participants"]
    assert sorted(participants) == ["alice", "bob"]


async def test_create_room_with_no_participants(api: httpx.AsyncClient) -> None:
    """An empty participant list is a valid room, to be filled with PUT."""
    response = await api.post(ROOMS, json={"participants": []})
    assert response.status_code == 201, response.text
    assert response.json()["participants"] == []


async def test_create_room_with_an_existing_id_is_409(
    server: RunningServer, api: httpx.AsyncClient
) -> None:
    """Creating a room whose id exists is 409, and the first room's participants are untouched."""
    first = await api.post(ROOMS, json={"id": "room-1", "participants": ["alice"]})
    assert first.status_code == 201
    second = await api.post(ROOMS, json={"id": "room-1", "participants": ["mallory"]})
    assert second.status_code == 409
    assert "error" in second.json()
    # mallory did not become a participant through the failed create
    assert await handshake_status(server, room_path("room-1"), "mallory") == 403


AUTH_HEADERS: dict[str, Callable[[str], dict[str, str]]] = {
    "none": lambda key: {},
    "wrong": lambda key: {"Authorization": "Bearer wrong"},
    "wrong-same-length": lambda key: {"Authorization": "Bearer " + "x" * len(key)},
    "wrong-longer": lambda key: {"Authorization": "Bearer " + key + "x"},
    "prefix": lambda key: {"Authorization": "Bearer " + key[:-1]},
    "basic-scheme": lambda key: {"Authorization": "Basic " + key},
    "empty": lambda key: {"Authorization": "Bearer"},
}


@pytest.mark.parametrize("kind", list(AUTH_HEADERS))
async def test_room_endpoints_need_the_api_key(
    server: RunningServer, api: httpx.AsyncClient, kind: str
) -> None:
    """A missing or wrong API key (any length, any scheme) is 401 on every room endpoint."""
    room = await create_room(api, "alice")
    headers = AUTH_HEADERS[kind](server.services.api_key)
    async with httpx.AsyncClient(base_url=server.http_url(""), headers=headers) as anonymous:
        responses = [
            await anonymous.post(ROOMS, json={"participants": ["a"]}),
            await anonymous.put(participant_url(room, "bob")),
            await anonymous.delete(participant_url(room, "alice")),
        ]
    for response in responses:
        assert response.status_code == 401, response.request
        assert response.json()["error"] == "unauthorized"
    # nothing happened: alice is still a participant, bob is not
    async with connect(server, room_path(room), "alice") as alice:
        await alice.expect("connected")
    assert await handshake_status(server, room_path(room), "bob") == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "participants"),
        ({"id": "r"}, "participants"),
        ({"participants": "alice"}, "participants"),
        ({"participants": {"alice": True}}, "participants"),
        ({"participants": [5]}, "participants"),
        ({"participants": ["has space"]}, "participants"),
        ({"participants": ["a/b"]}, "participants"),
        ({"participants": [""]}, "participants"),
        ({"id": "a/b", "participants": []}, "id"),
        ({"id": "has space", "participants": []}, "id"),
        ({"id": "", "participants": []}, "id"),
        ({"id": 5, "participants": []}, "id"),
        ({"id": "x" * 129, "participants": []}, "id"),
        ({"participants": [], "color": "red"}, "color"),
    ],
)
async def test_bad_create_body_is_422_naming_the_field(
    api: httpx.AsyncClient, body: Any, field: str
) -> None:
    """A body that fails the schema is 422 and the message names the offending field."""
    response = await api.post(ROOMS, json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["message"]


@pytest.mark.parametrize("content", [b"", b"not json", b"{", b"[]", b'"room"', b"null"])
async def test_non_object_create_body_is_422(api: httpx.AsyncClient, content: bytes) -> None:
    """A body that is not a JSON object is 422 with an error message."""
    response = await api.post(ROOMS, content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] and body["message"]


# -- PUT …/participants/{userId} -----------------------------------------------------------


async def test_add_participant_lets_the_user_connect(
    server: RunningServer, api: httpx.AsyncClient
) -> None:
    """PUT is 204 and the user can then join the room; a second PUT is 204 and changes nothing."""
    room = await create_room(api, "alice")
    assert await handshake_status(server, room_path(room), "bob") == 403
    response = await api.put(participant_url(room, "bob"))
    assert response.status_code == 204
    assert response.content == b""
    async with connect(server, room_path(room), "alice") as alice:
        await alice.expect("connected")
        async with connect(server, room_path(room), "bob") as bob:
            assert sorted((await bob.expect("connected"))["online"]) == ["alice", "bob"]
            assert (await alice.expect("user.joined"))["userId"] == "bob"
            again = await api.put(participant_url(room, "bob"))
            assert again.status_code == 204
            await bob.assert_quiet()  # an idempotent PUT does not disturb the connection
            await alice.assert_quiet()


async def test_add_participant_to_an_unknown_room_is_404(api: httpx.AsyncClient) -> None:
    """PUT on a room that does not exist is 404 and does not create it."""
    response = await api.put(participant_url("no-such-room", "bob"))
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    again = await api.put(participant_url("no-such-room", "bob"))
    assert again.status_code == 404


# -- DELETE …/participants/{userId} --------------------------------------------------------


async def test_remove_participant_closes_their_connections_with_4403(
    server: RunningServer, api: httpx.AsyncClient
) -> None:
    """DELETE is 204; the user's two tabs close with 4403, the others hear `user.left` once."""
    room = await create_room(api, "alice", "bob", "carol")
    path = room_path(room)
    async with (
        connect(server, path, "alice") as alice,
        connect(server, path, "carol") as carol,
    ):
        await alice.expect("connected")
        await carol.expect("connected")
        await alice.expect("user.joined")
        async with (
            connect(server, path, "bob") as tab1,
            connect(server, path, "bob") as tab2,
        ):
            await tab1.expect("connected")
            await tab2.expect("connected")
            assert (await alice.expect("user.joined"))["userId"] == "bob"
            assert (await carol.expect("user.joined"))["userId"] == "bob"

            response = await api.delete(participant_url(room, "bob"))
            assert response.status_code == 204
            assert response.content == b""
            assert await tab1.closed_with() == 4403
            assert await tab2.closed_with() == 4403

            for member in (alice, carol):
                left = await member.expect("user.left")
                assert left["userId"] == "bob" and ISO.match(left["timestamp"])
                await member.assert_quiet()
        assert sorted(await server.services.hub.online(f"chat-rooms/{room}")) == [
            "alice",
            "carol",
        ]
        reply = await alice.request("chat.message", {"text": "still here"})
        assert reply["event"] == "ack"
        assert (await carol.expect("chat.message"))["message"] == "still here"
    assert await handshake_status(server, path, "bob") == 403


async def test_removed_user_keeps_other_rooms_and_routes(
    server: RunningServer, api: httpx.AsyncClient
) -> None:
    """Removal from one room closes only that room's connections of the user."""
    room1 = await create_room(api, "alice", "bob")
    room2 = await create_room(api, "alice", "bob")
    async with (
        connect(server, room_path(room1), "bob") as in_room1,
        connect(server, room_path(room2), "bob") as in_room2,
        connect(server, "/ws/user", "bob") as personal,
        connect(server, room_path(room1), "alice") as alice,
    ):
        for client in (in_room1, in_room2, personal, alice):
            await client.expect("connected")
        assert (await in_room1.expect("user.joined"))["userId"] == "alice"
        response = await api.delete(participant_url(room1, "bob"))
        assert response.status_code == 204
        assert await in_room1.closed_with() == 4403
        await in_room2.assert_quiet()
        await personal.assert_quiet()
        assert (await alice.expect("user.left"))["userId"] == "bob"
        await alice.assert_quiet()


async def test_remove_a_user_who_is_not_connected(
    server: RunningServer, api: httpx.AsyncClient
) -> None:
    """DELETE of a participant with no connection is 204 and they can no longer join."""
    room = await create_room(api, "alice", "bob")
    response = await api.delete(participant_url(room, "bob"))
    assert response.status_code == 204
    assert await handshake_status(server, room_path(room), "bob") == 403
    back = await api.put(participant_url(room, "bob"))
    assert back.status_code == 204
    async with connect(server, room_path(room), "bob") as bob:
        await bob.expect("connected")


async def test_remove_participant_from_an_unknown_room_is_404(api: httpx.AsyncClient) -> None:
    """DELETE on a room that does not exist is 404."""
    response = await api.delete(participant_url("no-such-room", "bob"))
    assert response.status_code == 404
    assert orjson.loads(response.content)["error"] == "not_found"


@pytest.mark.parametrize("user_id", ["x" * 129, "a%00b", "tab%09id"])
async def test_participant_path_ids_are_validated(api: httpx.AsyncClient, user_id: str) -> None:
    """A user id in the path that is too long or has control characters is 422, not 500."""
    room = await create_room(api, "alice")
    for method in ("PUT", "DELETE"):
        response = await api.request(
            method, f"/api/internal/chat-rooms/{room}/participants/{user_id}"
        )
        assert response.status_code == 422, response.text
        assert response.json()["message"].startswith("userId:")


class PausingStore:
    """The server's store, counting participant checks; the first waits, after its
    answer, until ``go`` is set."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.checks = 0
        self.answered = asyncio.Event()
        self.go = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def is_participant(self, room_id: str, user_id: str) -> bool:
        self.checks += 1
        answer = await self._store.is_participant(room_id, user_id)
        if self.checks == 1:
            self.answered.set()
            await self.go.wait()
        return answer


@asynccontextmanager
async def server_with(store: PausingStore, settings: Settings) -> AsyncIterator[RunningServer]:
    app = create_app(load_registry(ROOT).load(), settings, store=cast(Store, store))
    async with serve(app, settings) as running:
        yield running


async def test_a_removal_between_the_check_and_the_join_closes_4403(settings: Settings) -> None:
    """The user is removed after the participant middleware's check, before the
    connection joins (so the removal closes nothing): it is closed with 4403 once
    joined. Without any removal, a handshake asks the store once (one process)."""
    store = await open_store(settings.database_url)
    pausing = PausingStore(store)
    try:
        async with server_with(pausing, settings) as server, service_client(server) as api:
            room = await create_room(api, "alice", "bob")

            async def bob_connects() -> int | None:
                async with connect(server, room_path(room), "bob") as bob:
                    await bob.expect("connected")
                    return await bob.closed_with()

            bob = asyncio.create_task(bob_connects())
            async with asyncio.timeout(5):
                await pausing.answered.wait()  # checked: bob is a participant
            assert (await api.delete(participant_url(room, "bob"))).status_code == 204
            pausing.go.set()
            assert await asyncio.wait_for(bob, 5) == 4403
            assert pausing.checks == 2  # asked again after the join

            pausing.checks = 1  # no pause from here
            async with connect(server, room_path(room), "alice") as alice:
                await alice.expect("connected")
                await alice.request("ping", None)
            assert pausing.checks == 2  # nothing was removed meanwhile: asked once
    finally:
        await store.close()
