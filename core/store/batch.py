"""Group commit: rows written by many concurrent callers share one transaction.

Each caller awaits until its row is committed, so "stored before it is broadcast
or acknowledged" holds for every row; what changes is that rows queued while a
commit is in flight go into the next transaction together, sharing its fsync.
There is no artificial delay: a lone row is committed at once. Callers are
resumed in the order they queued their rows, so one connection's messages keep
their order.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import Table, exc, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from core.errors import RoomNotFound, StoreUnavailable
from core.store.engine import unavailable

MAX_BATCH = 500
"""Rows per transaction at most: bounds one commit's latency under a backlog."""


class GroupCommit:
    def __init__(self, engine: AsyncEngine, table: Table, operation: str) -> None:
        self._engine = engine
        self._table = table
        self._operation = operation
        self._queue: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def insert(self, values: dict[str, Any]) -> None:
        """Return once ``values`` is committed.

        Raises:
            StoreUnavailable: the transaction failed; the row was not stored.
            RoomNotFound: the row's chat room does not exist.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((values, future))
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())
        await future

    async def close(self) -> None:
        """Let queued rows be committed (or fail) before the engine goes away."""
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def _write(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                try:
                    await self._commit([values for values, _ in batch])
                except _Rejected:
                    # One row's room is gone: do not fail the others with it.
                    for values, future in batch:
                        await self._commit_one(values, future)
                except StoreUnavailable as error:
                    for _, future in batch:
                        _settle(future, StoreUnavailable(str(error)))
                else:
                    for _, future in batch:
                        _settle(future, None)
        finally:
            self._writer = None

    async def _commit(self, rows: list[dict[str, Any]]) -> None:
        with unavailable(self._operation):
            try:
                async with self._engine.begin() as conn:  # the commit is the durability point
                    await conn.execute(insert(self._table), rows)
            except exc.IntegrityError:
                raise _Rejected from None

    async def _commit_one(self, values: dict[str, Any], future: asyncio.Future[None]) -> None:
        try:
            await self._commit([values])
        except _Rejected:
            _settle(future, RoomNotFound(str(values.get("chat_room"))))
        except StoreUnavailable as error:
            _settle(future, error)
        else:
            _settle(future, None)


class _Rejected(Exception):
    """A constraint refused a row (its chat room does not exist)."""


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # the caller went away (its connection closed); the row stands
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
