"""Handshake authentication and access, token expiry and `auth.refresh` (SPEC §4)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import orjson
import pytest
import websockets

from core.server import app_from_registry
from core.settings import Settings
from core.testing import Client, RunningServer, bearer, connect, serve
from tests.conftest import ROOT, LogCapture, create_room, room_path

ALLOWED = "https://app.example.com, https://admin.example.com/"


def jwt_secret(settings: Settings) -> str:
    """The server's development JWT secret, from the secrets file it created."""
    secret: str = json.loads(settings.secrets_file.read_text())["jwt_secret"]
    return secret


def sign(claims: dict[str, Any], secret: str) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def exp_of(token: str) -> float:
    claims = jwt.decode(token, options={"verify_signature": False})
    return float(claims["exp"])


async def refusal(url: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body of a handshake the server must refuse before the upgrade."""
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(url, open_timeout=5, **kwargs):
            pass
    response = info.value.response
    body: dict[str, Any] = orjson.loads(response.body)
    return response.status_code, body


@contextlib.asynccontextmanager
async def open_client(url: str, **kwargs: Any) -> AsyncIterator[Client]:
    async with websockets.connect(url, open_timeout=5, **kwargs) as ws:
        yield Client(ws)


@contextlib.asynccontextmanager
async def serve_with(
    settings: Settings, **update: Any
) -> AsyncIterator[tuple[RunningServer, httpx.AsyncClient]]:
    """A second real server of the project with some settings changed, and its API client."""
    changed = settings.model_copy(update=update)
    async with serve(app_from_registry(ROOT, changed), changed) as running:
        headers = {"Authorization": f"Bearer {running.services.api_key}"}
        async with httpx.AsyncClient(base_url=running.http_url(""), headers=headers) as api:
            yield running, api


@pytest.fixture(params=["chat-rooms", "user"])
async def path(request: pytest.FixtureRequest, api: httpx.AsyncClient) -> str:
    """Each authenticated route: a chat room of alice and bob, and /ws/user."""
    if request.param == "user":
        return "/ws/user"
    return room_path(await create_room(api, "alice", "bob"))


# -- where the token comes from ------------------------------------------------------------


async def test_bearer_header_is_accepted(server: RunningServer, path: str) -> None:
    """`Authorization: Bearer <token>` authenticates the handshake as the token's `sub`."""
    async with connect(server, path, "alice") as alice:
        assert (await alice.expect("connected"))["userId"] == "alice"
        assert alice.ws.subprotocol is None
        await alice.assert_quiet()


async def test_bearer_subprotocol_pair_is_accepted_and_selected(
    server: RunningServer, path: str
) -> None:
    """The subprotocol pair ["bearer", token] authenticates, and the server selects `bearer`."""
    url = server.ws_url(path)
    async with open_client(url, subprotocols=["bearer", server.token("alice")]) as alice:
        assert alice.ws.subprotocol == "bearer"
        assert (await alice.expect("connected"))["userId"] == "alice"
        await alice.assert_quiet()


async def test_query_token_is_refused_by_default(server: RunningServer, path: str) -> None:
    """`?token=` is off by default: the handshake is refused with 401."""
    status, body = await refusal(server.ws_url(f"{path}?token={server.token('alice')}"))
    assert status == 401
    assert body["error"] == "unauthorized"


async def test_query_token_is_accepted_when_enabled(settings: Settings) -> None:
    """With `query_token` on, `?token=` authenticates on both routes; the header still works."""
    assert settings.model_config.get("frozen") is True  # model_copy is the way to change it
    async with serve_with(settings, query_token=True) as (running, api):
        assert running.services.settings.query_token is True
        room = await create_room(api, "alice", "bob")
        for path in (room_path(room), "/ws/user"):
            url = running.ws_url(f"{path}?token={running.token('alice')}")
            async with open_client(url) as alice:
                assert (await alice.expect("connected"))["userId"] == "alice"
                await alice.assert_quiet()
        async with connect(running, room_path(room), "bob") as bob:
            assert (await bob.expect("connected"))["userId"] == "bob"
        status, _ = await refusal(running.ws_url(f"{room_path(room)}?token=garbage"))
        assert status == 401


# -- 401 -------------------------------------------------------------------------------


async def test_missing_token_is_401(server: RunningServer, path: str) -> None:
    """No token at all: 401 before the upgrade, with a JSON body naming the error."""
    status, body = await refusal(server.ws_url(path))
    assert status == 401
    assert body["error"] == "unauthorized"


@pytest.mark.parametrize("header", ["Basic x", "Bearer", "Bearer    ", "Token abc"])
async def test_malformed_authorization_header_is_401(
    server: RunningServer, path: str, header: str
) -> None:
    """An Authorization header that is not `Bearer <token>` is 401."""
    status, body = await refusal(server.ws_url(path), additional_headers={"Authorization": header})
    assert status == 401
    assert body["error"] == "unauthorized"


@pytest.mark.parametrize(
    "kind", ["bad_signature", "expired", "no_sub", "empty_sub", "garbage", "alg_none"]
)
async def test_invalid_token_is_401(
    server: RunningServer, settings: Settings, path: str, kind: str
) -> None:
    """Badly signed, expired, `sub`-less, `alg: none` and garbage tokens are refused with 401."""
    secret = jwt_secret(settings)
    now = int(time.time())
    token = {
        "bad_signature": lambda: sign({"sub": "alice", "exp": now + 3600}, "another-secret" * 4),
        "expired": lambda: sign({"sub": "alice", "exp": now - 60}, secret),
        "no_sub": lambda: sign({"exp": now + 3600}, secret),
        "empty_sub": lambda: sign({"sub": "", "exp": now + 3600}, secret),
        "garbage": lambda: "this-is-not-a-jwt",
        "alg_none": lambda: jwt.encode({"sub": "alice"}, None, algorithm="none"),
    }[kind]()
    status, body = await refusal(server.ws_url(path), additional_headers=bearer(token))
    assert status == 401
    assert body["error"] == "unauthorized"
    # The same token through the subprotocol pair is refused the same way.
    status, _ = await refusal(server.ws_url(path), subprotocols=["bearer", token])
    assert status == 401


async def test_a_valid_token_signed_with_the_servers_secret_is_accepted(
    server: RunningServer, settings: Settings, path: str
) -> None:
    """Control for the 401 cases: a token built the same way but correctly signed connects."""
    token = sign({"sub": "alice", "exp": int(time.time()) + 3600}, jwt_secret(settings))
    async with open_client(server.ws_url(path), additional_headers=bearer(token)) as alice:
        assert (await alice.expect("connected"))["userId"] == "alice"


async def test_refused_token_never_appears_in_logs(
    server: RunningServer, settings: Settings, path: str, logs: LogCapture
) -> None:
    """A refused handshake is logged without the token it carried."""
    token = sign({"sub": "alice", "exp": int(time.time()) - 60}, jwt_secret(settings))
    status, _ = await refusal(server.ws_url(path), additional_headers=bearer(token))
    assert status == 401
    assert token not in json.dumps(logs.lines)


# -- 403 and 404 --------------------------------------------------------------------------


async def test_non_participant_is_403(server: RunningServer, api: httpx.AsyncClient) -> None:
    """A valid user who is not a participant of the room is refused with 403."""
    room = await create_room(api, "alice", "bob")
    status, body = await refusal(
        server.ws_url(room_path(room)), additional_headers=bearer(server.token("mallory"))
    )
    assert status == 403
    assert body["error"] == "forbidden"


async def test_origin_outside_the_allowed_list_is_403(settings: Settings) -> None:
    """With allowed origins set, another Origin is 403; an allowed or absent Origin connects."""
    async with serve_with(settings, allowed_origins=ALLOWED) as (running, api):
        room = await create_room(api, "alice", "bob")
        for path in (room_path(room), "/ws/user"):
            url = running.ws_url(path)
            headers = bearer(running.token("alice"))
            for bad in ("https://evil.example.com", "http://app.example.com"):
                status, body = await refusal(url, additional_headers=headers, origin=bad)
                assert status == 403, bad
                assert body["error"] == "forbidden_origin"
            allowed: list[str | None] = [
                "https://app.example.com",
                "https://admin.example.com",
                None,  # not a browser: no Origin header
            ]
            for origin in allowed:
                async with open_client(url, additional_headers=headers, origin=origin) as alice:
                    assert (await alice.expect("connected"))["userId"] == "alice"
                    await alice.assert_quiet()


async def test_any_origin_connects_when_no_list_is_set(server: RunningServer, path: str) -> None:
    """allowed_origins empty (the default) means any Origin may connect."""
    headers = bearer(server.token("alice"))
    url = server.ws_url(path)
    async with open_client(url, additional_headers=headers, origin="https://any.example") as c:
        await c.expect("connected")


async def test_unknown_room_is_404(server: RunningServer) -> None:
    """A valid token for a room that does not exist is refused with 404."""
    status, body = await refusal(
        server.ws_url(room_path("no-such-room")), additional_headers=bearer(server.token("alice"))
    )
    assert status == 404
    assert body["error"] == "not_found"


@pytest.mark.parametrize(
    "path", ["/ws/nope", "/ws/comms/chat-rooms", "/ws/comms/chat-rooms/a/b", "/", "/ws/user/x"]
)
async def test_path_with_no_handler_is_404(server: RunningServer, path: str) -> None:
    """A handshake on a path no handler serves is refused with 404."""
    status, body = await refusal(server.ws_url(path), additional_headers=bearer(server.token("a")))
    assert status == 404
    assert body["error"] == "not_found"


async def test_refused_connections_are_not_heard_by_members(
    server: RunningServer, api: httpx.AsyncClient, settings: Settings
) -> None:
    """A member hears nothing of a refused attempt: its next frame is the pong to its ping."""
    room = await create_room(api, "alice", "bob")
    url = server.ws_url(room_path(room))
    async with connect(server, room_path(room), "alice") as alice:
        await alice.expect("connected")
        status, _ = await refusal(url, additional_headers=bearer(server.token("mallory")))
        assert status == 403
        expired = sign({"sub": "bob", "exp": int(time.time()) - 60}, jwt_secret(settings))
        status, _ = await refusal(url, additional_headers=bearer(expired))
        assert status == 401
        await alice.assert_quiet()
        assert await server.services.hub.online(f"chat-rooms/{room}") == ["alice"]


# -- expiry and auth.refresh ---------------------------------------------------------------


async def test_expired_token_closes_the_connection_with_4401(
    server: RunningServer, path: str
) -> None:
    """A token that expires while connected closes the connection with 4401, not before exp."""
    token = server.token("alice", ttl=2)
    exp = exp_of(token)
    async with open_client(server.ws_url(path), additional_headers=bearer(token)) as alice:
        await alice.expect("connected")
        await alice.assert_quiet()
        assert await alice.closed_with(timeout=6) == 4401
        assert time.time() >= exp - 0.1


async def test_auth_refresh_with_a_fresh_token_keeps_the_connection(
    server: RunningServer, path: str
) -> None:
    """`auth.refresh` with a newer token for the same user is acked and defers the 4401."""
    token = server.token("alice", ttl=2)
    exp = exp_of(token)
    async with open_client(server.ws_url(path), additional_headers=bearer(token)) as alice:
        await alice.expect("connected")
        reply = await alice.request("auth.refresh", {"token": server.token("alice")}, ref="rf")
        assert reply == {"event": "ack", "payload": {"ref": "rf"}}
        await asyncio.sleep(max(0.0, exp + 1 - time.time()))  # past the old token's expiry
        await alice.assert_quiet()


async def test_auth_refresh_with_a_bad_token_is_refused_and_expiry_stands(
    server: RunningServer, settings: Settings, path: str
) -> None:
    """Another user's, badly signed, expired, exp-less or garbage tokens get `invalid_payload`
    `token:…`; the connection still closes with 4401 on the original schedule."""
    token = server.token("alice", ttl=2)
    exp = exp_of(token)
    now = int(time.time())
    bad_tokens = [
        server.token("bob"),
        sign({"sub": "alice", "exp": now + 3600}, "another-secret" * 4),
        sign({"sub": "alice", "exp": now - 60}, jwt_secret(settings)),
        sign({"sub": "alice"}, jwt_secret(settings)),  # no exp: cannot lift the expiry
        "garbage",
    ]
    async with open_client(server.ws_url(path), additional_headers=bearer(token)) as alice:
        await alice.expect("connected")
        for i, bad in enumerate(bad_tokens):
            reply = await alice.request("auth.refresh", {"token": bad}, ref=f"bad-{i}")
            assert reply["event"] == "error", reply
            assert reply["payload"]["code"] == "invalid_payload"
            assert reply["payload"]["message"].startswith("token:")
            assert reply["payload"]["ref"] == f"bad-{i}"
            assert bad not in reply["payload"]["message"]
        await alice.assert_quiet()
        assert await alice.closed_with(timeout=6) == 4401
        assert exp - 0.1 <= time.time() <= exp + 2


async def test_auth_refresh_payload_is_validated(server: RunningServer, path: str) -> None:
    """`auth.refresh` without a string `token` is `invalid_payload` naming `token`."""
    async with connect(server, path, "alice") as alice:
        await alice.expect("connected")
        for data in ({}, {"token": 5}, {"token": ""}):
            reply = await alice.request("auth.refresh", data, ref="x")
            assert reply["payload"]["code"] == "invalid_payload", reply
            assert reply["payload"]["message"].startswith("token")
        await alice.assert_quiet()
