"""What middleware and hooks know about a connection's handshake."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.services import Services


@dataclass(slots=True)
class Context:
    """The handshake of one connection, shared by its middleware and hooks.

    Middleware fill ``user_id``, ``expires_at`` and ``state``; a middleware that
    authenticates through the subprotocol sets ``subprotocol`` to the one the
    server selects.
    """

    route: str
    path_params: Mapping[str, str]
    headers: Mapping[str, str]
    query_params: Mapping[str, str]
    subprotocols: tuple[str, ...]
    services: Services
    user_id: str | None = None
    subprotocol: str | None = None
    # When the presented credentials expire (Unix time): the connection closes with 4401.
    expires_at: float | None = None
    state: dict[str, Any] = field(default_factory=dict)
