"""One helper object per event loop, shared by every connection on that loop."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    """``factory(loop)``, made on first use for each loop.

    The last one found is checked first: a weak-keyed lookup makes a weak reference
    per call (3 us), and this is asked once per connection.
    """

    __slots__ = ("_factory", "_last", "_last_loop", "_made")

    def __init__(self, factory: Callable[[asyncio.AbstractEventLoop], T]) -> None:
        self._factory = factory
        self._made: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = (
            weakref.WeakKeyDictionary()
        )
        self._last_loop: asyncio.AbstractEventLoop | None = None
        self._last: T | None = None

    def get(self, loop: asyncio.AbstractEventLoop) -> T:
        if loop is self._last_loop:
            return self._last  # type: ignore[return-value]
        made = self._made.get(loop)
        if made is None:
            made = self._made[loop] = self._factory(loop)
        self._last_loop, self._last = loop, made
        return made
