"""Record and connection ids: UUID version 7 strings (RFC 9562).

Version 7 starts with the Unix time in milliseconds, so ids made one after the
other sort together: a new chat message's id lands at the end of the id index
instead of on a random page of it, which halved SQLite's work per stored message
in the benchmark (a random uuid4 dirties one more index page per row, and every
dirty page is written to the WAL at commit). The other 74 bits are random, from
``os.urandom`` taken 4 KiB at a time: one system call (which also releases the
GIL to the store's writer thread) per 400 ids instead of one per id.
"""

from __future__ import annotations

import os
import time

_POOL_SIZE = 4000  # bytes of randomness per refill: 400 ids
_RANDOM_BYTES = 10  # 80 bits drawn per id; 74 of them are kept

_pool = b""
_offset = 0


def _reset() -> None:
    global _pool, _offset
    _pool, _offset = b"", 0


# A child process must not hand out the ids its parent's pool would.
os.register_at_fork(after_in_child=_reset)

_RAND_A = 0xFFF << 68  # 12 bits after the version
_RAND_B = (1 << 62) - 1  # 62 bits after the variant


def new_id() -> str:
    """A new UUIDv7, e.g. ``019ad0a4-6a3c-7d1e-9f0b-2c4e8a6b1d37``."""
    global _pool, _offset
    if _offset + _RANDOM_BYTES > len(_pool):
        _pool, _offset = os.urandom(_POOL_SIZE), 0
    rand = int.from_bytes(_pool[_offset : _offset + _RANDOM_BYTES])
    _offset += _RANDOM_BYTES
    value = (
        (time.time_ns() // 1_000_000) << 80
        | 0x7 << 76
        | (rand & _RAND_A) >> 4
        | 0b10 << 62
        | rand & _RAND_B
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
