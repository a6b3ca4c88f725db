"""The platform's way in (SPEC §7, §10): publish, notifications, history, OpenAPI."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate

from core.testing import RunningServer, connect
from tests.conftest import create_room, room_members

CONFIRMED = {
    "appointmentId": "apt-1",
    "providerId": "prov-9",
    "confirmedAt": "2026-11-29T10:00:00.000Z",
}
USER_EVENTS = {
    "appointment.confirmed": CONFIRMED,
    "appointment.cancelled": {
        "appointmentId": "apt-1",
        "cancelledBy": "patient-3",
        "reason": "feeling better",
        "cancelledAt": "2026-11-29T10:00:00.000Z",
    },
    "appointment.rejected": {
        "appointmentId": "apt-1",
        "providerId": "prov-9",
        "reason": None,
        "rejectedAt": "2026-11-29T10:00:00.000Z",
    },
    "notification.new": {
        "id": "5d1a8a2e-8a0c-4ad2-9a57-2d5d0c3e5f11",
        "type": "reminder",
        "title": "Tomorrow",
        "message": "Your appointment is at 10:00",
        "relatedEntityType": "appointment",
        "relatedEntity": "apt-1",
        "createdAt": "2026-11-29T10:00:00.000Z",
    },
}


def user_auth(server: RunningServer, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token(user)}"}


@pytest.mark.parametrize("event", sorted(USER_EVENTS))
async def test_publish_to_user_arrives_with_its_exact_payload(
    server: RunningServer, api: httpx.AsyncClient, event: str
) -> None:
    """Each user event published over HTTP reaches the user's /ws/user client unchanged."""
    async with connect(server, "/ws/user", "alice") as alice:
        await alice.expect("connected")
        await alice.assert_quiet()
        response = await api.post(
            "/api/internal/users/alice/events", json={"event": event, "payload": USER_EVENTS[event]}
        )
        assert response.status_code == 202, response.text
        assert await alice.expect(event) == USER_EVENTS[event]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"event": "appointment.moved", "payload": CONFIRMED}, "event: unknown event"),
        (
            {"event": "appointment.confirmed", "payload": {}},
            "payload.appointmentId: Field required",
        ),
        (
            {"event": "appointment.confirmed", "payload": {**CONFIRMED, "confirmedAt": "soon"}},
            "payload.confirmedAt:",
        ),
        ({"event": "appointment.confirmed", "payload": {**CONFIRMED, "x": 1}}, "payload.x:"),
        ({"payload": CONFIRMED}, "event: Field required"),
    ],
)
async def test_publish_to_user_rejects_what_fails_the_schema(
    server: RunningServer, api: httpx.AsyncClient, body: dict[str, object], message: str
) -> None:
    """An unknown event or a payload failing its schema is 422 naming the field; nothing is sent."""
    async with connect(server, "/ws/user", "alice") as alice:
        await alice.expect("connected")
        response = await api.post("/api/internal/users/alice/events", json=body)
        assert response.status_code == 422
        assert response.json()["message"].startswith(message), response.json()
        await alice.assert_quiet()


async def test_publish_needs_the_api_key(server: RunningServer) -> None:
    """Every internal endpoint answers 401 without the key or with a user token."""
    async with httpx.AsyncClient(base_url=server.http_url("")) as anonymous:
        for path, body in [
            (
                "/api/internal/users/alice/events",
                {"event": "appointment.confirmed", "payload": CONFIRMED},
            ),
            ("/api/internal/channels/chat-rooms/x/events", {"event": "e", "payload": {}}),
            (
                "/api/internal/notifications",
                {"userId": "a", "type": "t", "title": "t", "message": "m"},
            ),
        ]:
            assert (await anonymous.post(path, json=body)).status_code == 401
            wrong = await anonymous.post(path, json=body, headers=user_auth(server, "alice"))
            assert wrong.status_code == 401


async def test_publish_to_channel_reaches_every_member(
    server: RunningServer, api: httpx.AsyncClient
) -> None:
    """A channel publication reaches every connection of the room, any event name allowed."""
    room = await create_room(api, "alice", "bob")
    async with room_members(server, room, "alice", "bob") as (alice, bob):
        body = {"event": "consultation.started", "payload": {"consultationId": "c-1"}}
        response = await api.post(f"/api/internal/channels/chat-rooms/{room}/events", json=body)
        assert response.status_code == 202
        assert await alice.expect("consultation.started") == {"consultationId": "c-1"}
        assert await bob.expect("consultation.started") == {"consultationId": "c-1"}
        for bad in ("Upper.Case", "with space", "", "x" * 65):
            response = await api.post(
                f"/api/internal/channels/chat-rooms/{room}/events",
                json={"event": bad, "payload": {}},
            )
            assert response.status_code == 422
            assert response.json()["message"].startswith("event:")
        await alice.assert_quiet()


async def test_notification_created_offline_is_listed(
    server: RunningServer, api: httpx.AsyncClient
) -> None:
    """A notification for an offline user is stored and listed by GET /api/notifications."""
    body = {"userId": "carol", "type": "reminder", "title": "Hi", "message": "Body text"}
    created = await api.post("/api/internal/notifications", json=body)
    assert created.status_code == 201
    stored = created.json()
    assert set(stored) == {
        "id", "type", "title", "message", "relatedEntityType", "relatedEntity", "createdAt",
    }  # fmt: skip
    async with httpx.AsyncClient(base_url=server.http_url("")) as client:
        listed = await client.get("/api/notifications", headers=user_auth(server, "carol"))
        assert listed.status_code == 200
        assert listed.json() == {"items": [stored], "nextCursor": None}
        others = await client.get("/api/notifications", headers=user_auth(server, "dave"))
        assert others.json() == {"items": [], "nextCursor": None}
        assert (await client.get("/api/notifications")).status_code == 401


async def test_notification_created_online_is_pushed(
    server: RunningServer, api: httpx.AsyncClient
) -> None:
    """A notification for a connected user is pushed as notification.new, equal to the 201 body."""
    async with connect(server, "/ws/user", "carol") as carol:
        await carol.expect("connected")
        await carol.assert_quiet()
        created = await api.post(
            "/api/internal/notifications",
            json={
                "userId": "carol",
                "type": "appointment",
                "title": "Confirmed",
                "message": "See you",
                "relatedEntityType": "appointment",
                "relatedEntity": "apt-7",
            },
        )
        assert created.status_code == 201
        assert await carol.expect("notification.new") == created.json()
    bad = await api.post("/api/internal/notifications", json={"userId": "carol", "type": "t"})
    assert bad.status_code == 422
    assert bad.json()["message"].startswith("title:")


async def test_history_pages_return_each_message_once(
    server: RunningServer, api: httpx.AsyncClient
) -> None:
    """Paging 300 messages 7 at a time returns each exactly once, newest first."""
    room = await create_room(api, "alice", "bob")
    store = server.services.store
    sent = [(await store.save_message(room, "alice", f"m{i}")).id for i in range(300)]
    seen: list[str] = []
    cursor = None
    async with httpx.AsyncClient(base_url=server.http_url("")) as client:
        for _ in range(60):
            params = {"limit": "7", **({"before": cursor} if cursor else {})}
            page = await client.get(
                f"/api/chat-rooms/{room}/messages", params=params, headers=user_auth(server, "bob")
            )
            assert page.status_code == 200, page.text
            seen += [item["id"] for item in page.json()["items"]]
            cursor = page.json()["nextCursor"]
            if cursor is None:
                break
    assert seen == list(reversed(sent))


async def test_history_is_for_participants_only(
    server: RunningServer, api: httpx.AsyncClient
) -> None:
    """401 without a token, 403 for a non-participant, 404 for no room, 422 for bad paging."""
    room = await create_room(api, "alice")
    async with httpx.AsyncClient(base_url=server.http_url("")) as client:
        path = f"/api/chat-rooms/{room}/messages"
        assert (await client.get(path)).status_code == 401
        assert (await client.get(path, headers={"Authorization": "Bearer junk"})).status_code == 401
        assert (await client.get(path, headers=user_auth(server, "eve"))).status_code == 403
        missing = await client.get(
            "/api/chat-rooms/nope/messages", headers=user_auth(server, "alice")
        )
        assert missing.status_code == 404
        for params, field in [
            ({"limit": "0"}, "limit"),
            ({"limit": "x"}, "limit"),
            ({"before": "zz"}, "before"),
        ]:
            bad = await client.get(path, params=params, headers=user_auth(server, "alice"))
            assert bad.status_code == 422
            assert bad.json()["message"].startswith(f"{field}:")


async def test_openapi_document_is_valid_and_complete(server: RunningServer) -> None:
    """GET /openapi.json is a valid OpenAPI document listing every HTTP endpoint of SPEC §10."""
    async with httpx.AsyncClient(base_url=server.http_url("")) as client:
        document = (await client.get("/openapi.json")).json()
    validate(document)
    operations = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    assert operations >= {
        ("POST", "/api/internal/chat-rooms"),
        ("PUT", "/api/internal/chat-rooms/{room}/participants/{userId}"),
        ("DELETE", "/api/internal/chat-rooms/{room}/participants/{userId}"),
        ("POST", "/api/internal/users/{userId}/events"),
        ("POST", "/api/internal/channels/{namespace}/{id}/events"),
        ("POST", "/api/internal/notifications"),
        ("GET", "/api/chat-rooms/{room}/messages"),
        ("GET", "/api/notifications"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
    }


@pytest.mark.parametrize("credential", ["api_key", "user_token"])
async def test_property_based_run_finds_no_server_error(
    server: RunningServer, credential: str, tmp_path: Path
) -> None:
    """Schemathesis, generating requests from /openapi.json, never gets a 5xx (nor a timeout)."""
    secret = server.services.api_key if credential == "api_key" else server.token("alice")
    st = str(Path(sys.executable).with_name("st"))
    proc = await asyncio.create_subprocess_exec(
        st, "run", server.http_url("/openapi.json"),
        "--checks", "not_a_server_error",
        "--header", f"Authorization: Bearer {secret}",
        "--max-examples", "25",
        "--seed", "1",
        "--request-timeout", "5",
        "--exclude-path", "/metrics",
        "--report-dir", str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(proc.communicate(), 240)
    assert proc.returncode == 0, output.decode()[-4000:]
