"""WebSocket close codes wsgen uses (SPEC §10).

The RFC 6455 names are kept for the 1xxx codes. The application codes mirror
HTTP statuses (4401, 4403, 4409) so that operators read them at a glance.
Whether a client should reconnect by itself is part of the contract:
after 1001, 1011, 1013 and 4401 (with a fresh token) yes; after 4403 and 4409
no, or two tabs of one user would evict each other forever.
"""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001  # server shutdown
    UNSUPPORTED_DATA = 1003  # binary frame
    POLICY_VIOLATION = 1008  # abuse, e.g. a connection that keeps flooding
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011  # on_connect failed
    TRY_AGAIN_LATER = 1013  # slow consumer
    TOKEN_EXPIRED = 4401
    REMOVED = 4403  # removed from the room
    REPLACED = 4409  # replaced by a newer connection of the same user


MAX_REASON_BYTES = 123


def clip_reason(reason: str) -> str:
    """A close reason cut to the 123 bytes a close frame can carry, on a character boundary."""
    encoded = reason.encode()
    if len(encoded) <= MAX_REASON_BYTES:
        return reason
    return encoded[:MAX_REASON_BYTES].decode(errors="ignore")
