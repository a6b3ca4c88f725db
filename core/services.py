"""The long-lived parts of a running server, made once and passed explicitly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.hub import Hub
from core.settings import Settings
from core.tokens import TokenCodec

if TYPE_CHECKING:
    from core.store import Store


@dataclass(slots=True)
class Services:
    """What middleware, hooks and HTTP endpoints reach through ``ctx.services``."""

    settings: Settings
    tokens: TokenCodec
    hub: Hub
    api_key: str
    _store: Store | None = field(default=None, repr=False)

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the store is opened at startup; no request runs before it")
        return self._store
