"""Persistence: the ``Store`` contract and its SQL implementation (SQLite, PostgreSQL).

Open a store with :func:`open_store`; migrate a database with
``core.store.migrate`` (``wsgen db upgrade``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from core.store.base import Store
from core.store.sql import SqlStore


async def open_store(
    url: str, *, auto_upgrade: bool | None = None, busy_timeout: float = 5.0
) -> Store:
    """The store for a ``WSGEN_DATABASE_URL``; see :meth:`SqlStore.open` for the arguments.

    Raises:
        ConfigError: a bad URL, or a PostgreSQL schema that is not current.
        StoreUnavailable: the database cannot be reached.
    """
    return await SqlStore.open(url, auto_upgrade=auto_upgrade, busy_timeout=busy_timeout)


if TYPE_CHECKING:
    _: Store = cast(SqlStore, None)

__all__ = ["SqlStore", "Store", "open_store"]
