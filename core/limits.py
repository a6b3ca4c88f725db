"""The per-connection rate limit: a token bucket, and the rule that closes a flooder.

Contract (SPEC §3, §10):

- A connection may send ``WSGEN_RATE_LIMIT`` messages per second on average (20 by
  default), in bursts of up to ``WSGEN_RATE_LIMIT_BURST`` (twice the rate by default).
  ``WSGEN_RATE_LIMIT=0`` turns the limit off.
- A message over the limit is dropped before it is parsed for dispatch and answered
  ``error`` ``rate_limited`` (with its ``ref``); the connection stays open.
- A client that keeps sending regardless is closed with 1008 (policy violation): when
  ``WSGEN_FLOOD_DROPS`` of its messages (100) have been dropped within
  ``WSGEN_FLOOD_WINDOW`` seconds (10) of the first drop of that window. Past that
  point, answering each frame costs the server more than it costs the client.

The check is arithmetic on ``time.monotonic()`` per message: no task, no timer.
"""

from __future__ import annotations

from core.settings import Settings, rate_burst


class RateLimiter:
    """One connection's bucket: ``allow`` per message, ``flooding`` per dropped message."""

    __slots__ = (
        "_burst",
        "_drops",
        "_flood_drops",
        "_flood_window",
        "_last",
        "_rate",
        "_tokens",
        "_window_start",
    )

    def __init__(
        self, rate: float, burst: int, flood_drops: int, flood_window: float, now: float
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)  # a new connection may send a full burst at once
        self._last = now
        self._flood_drops = flood_drops
        self._flood_window = flood_window
        self._drops = 0
        self._window_start = now

    @classmethod
    def from_settings(cls, settings: Settings, now: float) -> RateLimiter | None:
        """The limiter the settings ask for; None when the limit is off."""
        if settings.rate_limit <= 0:
            return None
        return cls(
            settings.rate_limit,
            rate_burst(settings),
            settings.flood_drops,
            settings.flood_window,
            now,
        )

    def allow(self, now: float) -> bool:
        """Take one token for a message; False when there is none (drop the message)."""
        tokens = self._tokens + (now - self._last) * self._rate
        self._last = now
        if tokens > self._burst:
            tokens = self._burst
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return True
        self._tokens = tokens
        return False

    def flooding(self, now: float) -> bool:
        """Count one dropped message; True once the window holds ``flood_drops`` of them."""
        if self._drops == 0 or now - self._window_start > self._flood_window:
            self._window_start = now
            self._drops = 0
        self._drops += 1
        return self._drops >= self._flood_drops
