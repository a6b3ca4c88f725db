"""core.deadlines: many coarse deadlines on one loop timer (keepalive pings, token expiry)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Callable

from core.deadlines import COMPACT_SLACK, RESOLUTION, Deadlines, deadlines


class Owner:
    def __init__(self, loop: asyncio.AbstractEventLoop, then: Callable[[], None] = lambda: None):
        self.deadline_key: int | None = None
        self.fired_at: list[float] = []
        self._loop = loop
        self._then = then

    def deadline_passed(self) -> None:
        self.fired_at.append(self._loop.time())
        self._then()


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_deadline_fires_once_not_early_and_at_most_one_resolution_late() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop)
    owners = [Owner(loop) for _ in range(3)]
    start = loop.time()
    wanted = [start + 0.05, start + 0.3, start + 0.3]
    for owner, when in zip(owners, wanted, strict=True):
        deadlines.set(owner, when)
    await until(lambda: all(o.fired_at for o in owners))
    await asyncio.sleep(2 * RESOLUTION)
    for owner, when in zip(owners, wanted, strict=True):
        (fired,) = owner.fired_at
        # uvloop rounds timers to the millisecond; "never early" holds to that.
        assert when - 0.002 <= fired <= when + RESOLUTION + 0.1
        assert owner.deadline_key is None


async def test_setting_again_replaces_and_none_cancels() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop)
    moved, cancelled, witness = Owner(loop), Owner(loop), Owner(loop)
    now = loop.time()
    deadlines.set(moved, now + 0.05)
    deadlines.set(moved, now + 0.5)
    deadlines.set(cancelled, now + 0.05)
    deadlines.set(cancelled, None)
    deadlines.set(witness, now + 0.6)
    await until(lambda: bool(witness.fired_at))
    assert len(moved.fired_at) == 1 and moved.fired_at[0] >= now + 0.5 - 0.002
    assert cancelled.fired_at == []


async def test_an_owner_re_arms_from_its_callback_and_may_cancel_another_due_one() -> None:
    """A keepalive ping schedules its pong's deadline from the ping's callback; a
    callback that cancels another owner due in the same bucket stops it firing."""
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop)
    second = Owner(loop)
    first = Owner(loop, then=lambda: deadlines.set(second, None))
    repeating = Owner(loop)
    repeating._then = lambda: (
        deadlines.set(repeating, loop.time() + 0.05) if len(repeating.fired_at) < 3 else None
    )
    now = loop.time()
    for owner in (first, second, repeating):
        deadlines.set(owner, now + 0.05)
    await until(lambda: len(repeating.fired_at) == 3)
    await asyncio.sleep(2 * RESOLUTION)
    assert len(repeating.fired_at) == 3
    # In one bucket the firing order is the set's: either first cancelled second in
    # time, or second fired before first ran. Never both, never twice.
    assert len(first.fired_at) == 1 and len(second.fired_at) <= 1


async def test_a_failing_callback_does_not_stop_the_others() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop)

    def fail() -> None:
        raise RuntimeError("boom")

    failing, other, later = Owner(loop, then=fail), Owner(loop), Owner(loop)
    now = loop.time()
    deadlines.set(failing, now + 0.01)
    deadlines.set(other, now + 0.01)
    deadlines.set(later, now + 0.4)  # a later bucket still gets its timer
    await until(lambda: bool(other.fired_at and failing.fired_at and later.fired_at))


async def test_deadlines_that_come_and_go_do_not_pile_up() -> None:
    """A client reconnecting over and over with the same token re-creates the same
    bucket each time: the heap of bucket keys stays bounded."""
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop)
    owner = Owner(loop)
    far = loop.time() + 3600
    for _ in range(10_000):
        deadlines.set(owner, far)
        deadlines.set(owner, None)
    assert len(deadlines._keys) <= 2 * len(deadlines._buckets) + COMPACT_SLACK + 1
    witness = Owner(loop)
    deadlines.set(witness, loop.time() + 0.05)
    await until(lambda: bool(witness.fired_at))


def test_a_closed_loop_is_not_kept_alive_by_its_helpers() -> None:
    """core.loops.PerLoop hands its helpers a weak proxy of the loop."""
    loop = asyncio.new_event_loop()
    owner = Owner(loop)
    deadlines.get(loop).set(owner, loop.time() + 60)  # a timer left armed
    owner._loop = None  # type: ignore[assignment]  # (the test's owner, not the helper)
    gone = weakref.ref(loop)
    loop.close()
    del loop
    gc.collect()
    assert gone() is None
