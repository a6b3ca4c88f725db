"""The long-lived parts of a running server, made once at start and passed explicitly."""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import Settings
from core.tokens import TokenCodec


@dataclass(slots=True)
class Services:
    """What middleware and hooks reach through ``ctx.services``."""

    settings: Settings
    tokens: TokenCodec
