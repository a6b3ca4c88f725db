"""Group commit: rows written by many concurrent callers share one transaction.

Each caller awaits until its row is committed, so "stored before it is broadcast
or acknowledged" holds for every row; what changes is that rows queued while a
commit is in flight go into the next transaction together, sharing its fsync.
There is no artificial delay: a lone row is committed at once. Callers are
resumed in the order they queued their rows, so one connection's messages keep
their order.

Two ways to commit a batch: through SQLAlchemy (any database), and, for the
embedded SQLite store, :class:`SqliteInserter`: plain ``sqlite3`` on a thread of
its own, so that the event loop's thread never waits for the GIL behind
SQLAlchemy's per-row work on another thread (measured: multi-second queueing in
the benchmark's pairs scenario, with the server half idle).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import Table, exc, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from core.errors import StoreUnavailable
from core.store.engine import unavailable

MAX_BATCH = 500
"""Rows per transaction at most: bounds one commit's latency under a backlog."""

Row = dict[str, Any]
Commit = Callable[[list[Row]], Awaitable[None]]
"""Commits rows in one transaction; raises Rejected (a constraint) or StoreUnavailable."""


class Rejected(Exception):
    """A constraint refused a row (for a chat message: its room does not exist)."""


class GroupCommit:
    def __init__(self, commit: Commit, rejected: Callable[[Row], Exception]) -> None:
        self._commit = commit
        self._rejected = rejected
        self._queue: list[tuple[Row, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def insert(self, row: Row) -> None:
        """Return once ``row`` is committed.

        Raises:
            StoreUnavailable: the transaction failed; the row was not stored.
            Exception: what ``rejected(row)`` makes when a constraint refused the row.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((row, future))
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())
        await future

    async def close(self) -> None:
        """Let queued rows be committed (or fail) before the database goes away."""
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def _write(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                try:
                    await self._commit([row for row, _ in batch])
                except Rejected:
                    # One row's room is gone: do not fail the others with it.
                    for row, future in batch:
                        await self._commit_one(row, future)
                except StoreUnavailable as error:
                    for _, future in batch:
                        _settle(future, StoreUnavailable(str(error)))
                else:
                    for _, future in batch:
                        _settle(future, None)
        finally:
            self._writer = None

    async def _commit_one(self, row: Row, future: asyncio.Future[None]) -> None:
        try:
            await self._commit([row])
        except Rejected:
            _settle(future, self._rejected(row))
        except StoreUnavailable as error:
            _settle(future, error)
        else:
            _settle(future, None)


def sqlalchemy_inserter(engine: AsyncEngine, table: Table, operation: str) -> Commit:
    async def commit(rows: list[Row]) -> None:
        with unavailable(operation):
            try:
                async with engine.begin() as conn:  # the commit is the durability point
                    await conn.execute(insert(table), rows)
            except exc.IntegrityError:
                raise Rejected from None

    return commit


class SqliteInserter:
    """Batches of one table's rows inserted with ``sqlite3`` on a dedicated thread.

    The connection has the store's durability settings (WAL, ``synchronous=FULL``):
    a batch is on disk when its commit returns. Rows are turned into parameter
    tuples on the event loop's thread, so the writer thread only runs SQLite, which
    releases the GIL.
    """

    def __init__(
        self,
        file: Path,
        table: Table,
        columns: Sequence[str],
        convert: Callable[[Row], tuple[Any, ...]],
        busy_timeout: float,
        operation: str,
    ) -> None:
        self._file = file
        self._convert = convert
        self._operation = operation
        self._busy_timeout = busy_timeout
        self._head = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
        self._row = "(" + ", ".join("?" * len(columns)) + ")"
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"wsgen-{table.name}")
        self._conn: sqlite3.Connection | None = None

    async def __call__(self, rows: list[Row]) -> None:
        # One multi-row INSERT: sqlite3 releases the GIL once for the whole batch, where
        # executemany would hand it back and forth with the event loop for every row.
        sql = self._head + ", ".join([self._row] * len(rows))
        params = [value for row in rows for value in self._convert(row)]
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._thread, self._insert, sql, params)
        except sqlite3.IntegrityError:
            raise Rejected from None
        except sqlite3.Error as error:
            raise StoreUnavailable(
                f"database unavailable during {self._operation} ({type(error).__name__}); "
                "try again later"
            ) from error

    def close(self) -> None:
        self._thread.submit(self._close).result()
        self._thread.shutdown()

    def _insert(self, sql: str, params: list[Any]) -> None:
        conn = self._conn
        if conn is None:
            conn = self._conn = sqlite3.connect(self._file, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {max(0, round(self._busy_timeout * 1000))}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(sql, params)
            conn.execute("COMMIT")  # the durability point
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # the caller went away (its connection closed); the row stands
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
