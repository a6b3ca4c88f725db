"""Timestamps as the protocol writes them: ISO 8601, UTC, milliseconds, ``Z``."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """``2026-11-29T10:00:00.000Z`` for an aware or naive-UTC datetime."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds") + "Z"


_last_ms = -1
_last_iso = ""


def now_iso() -> str:
    """The current time as the wire shows it; formatted once per millisecond (every
    pong and presence frame carries one)."""
    global _last_ms, _last_iso
    ms = time.time_ns() // 1_000_000
    if ms != _last_ms:
        _last_iso = iso(datetime.fromtimestamp(ms / 1000, UTC))
        _last_ms = ms
    return _last_iso
