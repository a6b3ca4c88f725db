"""Background tasks that nobody awaits, kept alive until they finish.

The event loop holds only weak references to tasks; a fire-and-forget task
can be garbage-collected mid-flight. Failures are logged, never lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from core.logging import get_logger

log = get_logger("wsgen.tasks")

_running: set[asyncio.Task[Any]] = set()


def spawn(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    task = asyncio.get_running_loop().create_task(coro)
    _running.add(task)
    task.add_done_callback(_finished)
    return task


def _finished(task: asyncio.Task[Any]) -> None:
    _running.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("background task failed", exc_info=task.exception())


async def cancel(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait until it has ended.

    Unlike awaiting it under ``suppress(CancelledError)``, a cancellation of the
    caller itself still reaches the caller.
    """
    task.cancel()
    await asyncio.wait([task])
