"""Coarse per-connection deadlines (keepalive pings, token expiry) on one timer per loop.

An event-loop timer costs about half a KiB per connection (uvloop's timer handle
and libuv timer, the callback's bound method, a context copy), and every idle
connection kept two: its next keepalive ping and its token's expiry. Here a
connection's deadline is an entry in a bucket of deadlines that fall in the same
quarter second, and the loop holds one timer, for the earliest bucket.

A deadline fires up to one ``RESOLUTION`` late, never early: fine for a 20 s
ping or a token's expiry.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
from typing import Protocol

from core.loops import PerLoop

RESOLUTION = 0.25  # seconds
_FIRING = -1  # the key of an owner whose bucket is being fired
COMPACT_SLACK = 64

log = logging.getLogger(__name__)


class HasDeadline(Protocol):
    deadline_key: int | None
    """Which bucket the owner is in; kept by :class:`Deadlines` only."""

    def deadline_passed(self) -> None: ...


class Deadlines:
    __slots__ = ("_buckets", "_keys", "_loop", "_timer_key")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._buckets: dict[int, set[HasDeadline]] = {}
        self._keys: list[int] = []  # a heap of bucket keys; a key whose bucket went is skipped
        # The bucket the loop's timer is armed for. The timer's handle is not kept (the
        # loop keeps it, and the handle its loop): a timer armed for an earlier bucket
        # supersedes it, and a superseded timer does nothing when it fires.
        self._timer_key: int | None = None

    def set(self, owner: HasDeadline, when: float | None) -> None:
        """Call ``owner.deadline_passed()`` at loop time ``when``; replaces the owner's
        earlier deadline. None cancels it."""
        key = owner.deadline_key
        if key is not None:
            owner.deadline_key = None
            bucket = self._buckets.get(key)
            if bucket is not None:
                bucket.discard(owner)
                if not bucket:
                    del self._buckets[key]
                    self._compact()
        if when is None:
            return
        key = math.ceil(when / RESOLUTION)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = set()
            heapq.heappush(self._keys, key)
            if self._timer_key is None or key < self._timer_key:
                self._arm(key)
        bucket.add(owner)
        owner.deadline_key = key

    def _compact(self) -> None:
        """Drop the heap's keys of buckets that went: connections that come and go with
        the same deadline (a reconnecting client's token expiry) would otherwise leave
        one key each until that time."""
        if len(self._keys) > 2 * len(self._buckets) + COMPACT_SLACK:
            self._keys = list(self._buckets)
            heapq.heapify(self._keys)

    def _arm(self, key: int) -> None:
        self._timer_key = key
        self._loop.call_at(key * RESOLUTION, self._fire, key)

    def _fire(self, fired: int) -> None:
        if fired != self._timer_key:
            return  # superseded
        self._timer_key = None
        due: list[HasDeadline] = []
        keys = self._keys
        while keys and keys[0] <= fired:
            bucket = self._buckets.pop(heapq.heappop(keys), None)
            if bucket:
                due.extend(bucket)
        for owner in due:
            owner.deadline_key = _FIRING
        # Owners re-arm from their callbacks; the next timer is armed after them. One
        # re-armed or cancelled by an earlier callback is no longer due.
        for owner in due:
            if owner.deadline_key != _FIRING:
                continue
            owner.deadline_key = None
            try:
                owner.deadline_passed()
            except Exception:
                log.exception("deadline callback failed")
        keys = self._keys  # a callback may have compacted the heap into a new list
        while keys and keys[0] not in self._buckets:
            heapq.heappop(keys)
        if keys and (self._timer_key is None or keys[0] < self._timer_key):
            self._arm(keys[0])


deadlines = PerLoop(Deadlines)
"""``deadlines.get(loop)``: the loop's :class:`Deadlines`."""
