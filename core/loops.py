"""One helper object per event loop, shared by every connection on that loop."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar, cast

T = TypeVar("T")


class PerLoop(Generic[T]):
    """``factory(loop)``, made on first use for each loop.

    The factory gets a weak proxy of the loop: a helper that held its loop strongly,
    kept in a dictionary weakly keyed by that loop, would keep every loop alive.
    The last loop asked about is checked first: a weak-keyed lookup makes a weak
    reference per call (3 us), and this is asked once per connection.
    """

    __slots__ = ("_factory", "_last", "_last_loop", "_made")

    def __init__(self, factory: Callable[[asyncio.AbstractEventLoop], T]) -> None:
        self._factory = factory
        self._made: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = (
            weakref.WeakKeyDictionary()
        )
        self._last_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
        self._last: T | None = None

    def get(self, loop: asyncio.AbstractEventLoop) -> T:
        if self._last_loop is not None and self._last_loop() is loop:
            return self._last  # type: ignore[return-value]
        made = self._made.get(loop)
        if made is None:
            proxy = cast(asyncio.AbstractEventLoop, weakref.proxy(loop))
            made = self._made[loop] = self._factory(proxy)
        self._last_loop, self._last = weakref.ref(loop), made
        return made
