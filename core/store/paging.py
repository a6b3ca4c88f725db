"""Keyset paging, newest first, with opaque cursors.

A cursor is the URL-safe base64 of ``<kind>.<seq>``: the list it belongs to
and the ``seq`` of the last item of the page it came from. The next page holds
the rows with a smaller ``seq``, so a page never repeats or skips a row, however
many rows share a timestamp and whatever is added meanwhile (new rows are newer).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

from sqlalchemy import Select, Table, select

from core.models import Page

CursorKind = Literal["m", "n"]  # chat messages, notifications

_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,40}\Z")
_BAD_CURSOR = "invalid cursor; pass the nextCursor of the previous page unchanged"


def encode_cursor(kind: CursorKind, seq: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}.{seq}".encode()).rstrip(b"=").decode("ascii")


def decode_cursor(kind: CursorKind, cursor: str) -> int:
    """The ``seq`` a cursor of this kind points at.

    Raises:
        ValueError: the cursor is malformed or belongs to another list.
    """
    if not _CURSOR.match(cursor):
        raise ValueError(_BAD_CURSOR)
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), b"-_", validate=True)
        prefix, dot, digits = raw.decode("ascii").partition(".")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError(_BAD_CURSOR) from None
    if prefix != kind or not dot or not digits.isdigit() or digits != str(int(digits)):
        raise ValueError(_BAD_CURSOR)
    return int(digits)


def check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")


def page_query(
    table: Table, key: str, value: str, limit: int, seq_before: int | None
) -> Select[Any]:
    """Up to ``limit + 1`` rows where ``key == value``, newest first, before ``seq_before``.

    The extra row only tells whether another page follows.
    """
    query = select(table).where(table.c[key] == value)
    if seq_before is not None:
        query = query.where(table.c.seq < seq_before)
    return query.order_by(table.c.seq.desc()).limit(limit + 1)


def make_page(
    kind: CursorKind, rows: Sequence[Any], limit: int, item: Callable[[Any], Any]
) -> Page:
    """The page of the first ``limit`` rows; a cursor only when more rows were found."""
    shown = rows[:limit]
    more = len(rows) > limit
    return Page(
        items=[item(row) for row in shown],
        next_cursor=encode_cursor(kind, shown[-1].seq) if more else None,
    )
