"""The events the platform may push to a user (SPEC §6, `/ws/user`), with their schemas.

``POST /api/internal/users/{userId}/events`` validates a payload against the
model of its event before delivering it; the OpenAPI document shows the same
models.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

from core.models import Notification, WireModel

Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class AppointmentConfirmed(WireModel):
    appointment_id: Id
    provider_id: Id
    confirmed_at: datetime


class AppointmentCancelled(WireModel):
    appointment_id: Id
    cancelled_by: Id
    reason: str | None = Field(max_length=2000)
    cancelled_at: datetime


class AppointmentRejected(WireModel):
    appointment_id: Id
    provider_id: Id
    reason: str | None = Field(max_length=2000)
    rejected_at: datetime


USER_EVENTS: dict[str, type[WireModel]] = {
    "notification.new": Notification,
    "appointment.confirmed": AppointmentConfirmed,
    "appointment.cancelled": AppointmentCancelled,
    "appointment.rejected": AppointmentRejected,
}


def _publication(event: str, model: type[WireModel]) -> type[BaseModel]:
    """``{event: <that literal>, payload: <its model>}``, for the OpenAPI document."""
    name = "".join(part.capitalize() for part in event.split(".")) + "Publication"
    fields: dict[str, Any] = {"event": (Literal[event], ...), "payload": (model, ...)}
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


# Documentation only: the endpoint validates the event name first, then the payload
# against USER_EVENTS, so that errors name "event" or "payload.<field>" plainly.
USER_EVENT_PUBLICATION: Any = Annotated[
    Union[tuple(_publication(event, model) for event, model in USER_EVENTS.items())],  # noqa: UP007
    Field(discriminator="event"),
]
