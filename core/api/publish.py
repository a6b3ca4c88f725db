"""Publishing for the platform's services, behind the API key (SPEC §7, §10).

The same deliveries exist as Python calls for code running inside the server:
``services.hub.send_to_user(user_id, event, payload)`` and
``services.hub.broadcast(channel, event, payload)``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, RootModel, StringConstraints, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.api.http import HTTPError, parse_body, parse_path, require_api_key
from core.api.spec import Operation, Reply, errors
from core.events import USER_EVENT_PUBLICATION, USER_EVENTS
from core.models import Notification, UserId, WireModel
from core.validation import describe

EventName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9._-]{1,64}$")]
Segment = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._~-]{1,128}$")]


class Accepted(BaseModel):
    """The event was handed to every process for delivery (at most once; not stored)."""

    status: str = "accepted"


class UserPublication(RootModel[USER_EVENT_PUBLICATION]):
    """One of the user events with its payload."""


class UserPath(BaseModel):
    userId: UserId


class ChannelPath(BaseModel):
    namespace: Segment
    id: Segment


class ChannelPublication(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event: EventName
    payload: dict[str, Any] = Field(default_factory=dict)


class _Envelope(BaseModel):
    event: str
    payload: Any = None


class CreateNotification(WireModel):
    user_id: UserId
    type: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    title: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    message: Annotated[str, StringConstraints(min_length=1, max_length=5000)]
    related_entity_type: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = (
        None
    )
    related_entity: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None


async def publish_to_user(request: Request) -> Response:
    """Push an event to every `/ws/user` connection of the user, on every process."""
    services = require_api_key(request)
    envelope = await parse_body(request, _Envelope)
    model = USER_EVENTS.get(envelope.event)
    if model is None:
        known = ", ".join(sorted(USER_EVENTS))
        raise HTTPError(422, "invalid_body", f"event: unknown event; one of {known}")
    try:
        payload = model.model_validate(envelope.payload)
    except ValidationError as exc:
        raise HTTPError(422, "invalid_body", "payload." + describe(exc)) from None
    await services.hub.send_to_user(
        request.path_params["userId"], envelope.event, payload.to_wire()
    )
    return JSONResponse(Accepted().model_dump(), 202)


async def publish_to_channel(request: Request) -> Response:
    """Broadcast an event to every connection subscribed to `<namespace>/<id>`."""
    services = require_api_key(request)
    channel = parse_path(request, ChannelPath)
    body = await parse_body(request, ChannelPublication)
    await services.hub.broadcast(f"{channel.namespace}/{channel.id}", body.event, body.payload)
    return JSONResponse(Accepted().model_dump(), 202)


async def create_notification(request: Request) -> Response:
    """Store a notification, then push it to the user as `notification.new`."""
    services = require_api_key(request)
    body = await parse_body(request, CreateNotification)
    notification = await services.store.create_notification(
        body.user_id,
        body.type,
        body.title,
        body.message,
        body.related_entity_type,
        body.related_entity,
    )
    wire = notification.to_wire()
    await services.hub.send_to_user(body.user_id, "notification.new", wire)
    return JSONResponse(wire, 201)


operations = [
    Operation(
        "POST",
        "/api/internal/users/{userId}/events",
        publish_to_user,
        "Publish an event to a user",
        {202: Reply("Handed over for delivery.", Accepted), **errors(401, 422, 503)},
        security="serviceApiKey",
        body=UserPublication,
        tags=("publish",),
    ),
    Operation(
        "POST",
        "/api/internal/channels/{namespace}/{id}/events",
        publish_to_channel,
        "Publish an event to a channel",
        {202: Reply("Handed over for delivery.", Accepted), **errors(401, 422, 503)},
        security="serviceApiKey",
        body=ChannelPublication,
        tags=("publish",),
    ),
    Operation(
        "POST",
        "/api/internal/notifications",
        create_notification,
        "Create a notification",
        {201: Reply("The stored notification.", Notification), **errors(401, 422, 503)},
        security="serviceApiKey",
        body=CreateNotification,
        tags=("notifications",),
    ),
]
