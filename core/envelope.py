"""The JSON envelope of every frame (SPEC §3).

Server to client: ``{"event": name, "payload": {...}}``, encoded once per message.
Client to server, both forms: ``{"type": name, "data": {...}}`` or
``{"event": name, "payload": {...}}``, with optional ``ref`` and ``to``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel

from core.frames import OutFrame

Ref = str | int | float


class ProtocolError(Exception):
    """A frame the server refuses; answered with an ``error`` event, connection kept."""

    def __init__(self, code: str, message: str, ref: Ref | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref


@dataclass(slots=True)
class Inbound:
    """One client message after envelope parsing.

    ``data`` is the raw object (or ``None``) until the event's model validated it;
    event handlers receive the validated value.
    """

    event: str
    data: Any
    ref: Ref | None = None
    to: str | None = None


_FORMS = (("type", "data"), ("event", "payload"))
_REF_TYPES = (str, int, float)  # a tuple: `str | int | float` would be built per call
# Larger integers arrive as floats and would not come back as they were sent.
_EXACT = float(2**53)


def parse(text: str | bytes) -> Inbound:
    """Parse a client frame.

    Raises:
        ProtocolError: ``invalid_json`` or ``invalid_message``, with the frame's
            ``ref`` when one could be read.
    """
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ProtocolError("invalid_json", "the frame is not valid JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError("invalid_json", "the frame must be a JSON object")

    ref = obj.get("ref")
    if ref is not None and (
        isinstance(ref, bool)
        or not isinstance(ref, _REF_TYPES)
        or (isinstance(ref, float) and abs(ref) >= _EXACT)
    ):
        raise ProtocolError(
            "invalid_message", "`ref` must be a string or a number (within ±2^53, exact in JSON)"
        )

    has_type = "type" in obj or "data" in obj
    has_event = "event" in obj or "payload" in obj
    if has_type and has_event:
        raise ProtocolError(
            "invalid_message", "use either {type, data} or {event, payload}, not both", ref
        )
    name_key, data_key = _FORMS[0] if has_type else _FORMS[1]
    event = obj.get(name_key)
    if not isinstance(event, str) or not event:
        raise ProtocolError(
            "invalid_message", f"`{name_key}` must be a non-empty string naming the event", ref
        )
    data = obj.get(data_key)
    if data is not None and not isinstance(data, dict):
        raise ProtocolError("invalid_message", f"`{data_key}` must be a JSON object", ref)
    to = obj.get("to")
    if to is not None and not isinstance(to, str):
        raise ProtocolError("invalid_message", "`to` must be a user id string", ref)
    return Inbound(event, data, ref, to)


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode(event: str, payload: Any) -> OutFrame:
    """Encode a server-to-client message once; it can be sent to any number of sockets."""
    return OutFrame(orjson.dumps({"event": event, "payload": payload}, default=_default))


def error_frame(code: str, message: str, ref: Ref | None = None) -> OutFrame:
    payload: dict[str, Any] = {"code": code, "message": message}
    if ref is not None:
        payload["ref"] = ref
    return encode("error", payload)
