"""The runtime that handler files use: import what a handler needs from here."""

from core.clock import now_iso
from core.close_codes import CloseCode
from core.connection import Connection
from core.context import Context
from core.envelope import Inbound
from core.errors import ClientError, InvalidRecord, Reject, StoreUnavailable
from core.ws import Event, WebSocketHandler

__all__ = [
    "ClientError",
    "CloseCode",
    "Connection",
    "Context",
    "Event",
    "Inbound",
    "InvalidRecord",
    "Reject",
    "StoreUnavailable",
    "WebSocketHandler",
    "now_iso",
]
