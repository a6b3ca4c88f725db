"""wsgen's HTTP protocol class for uvicorn (``uvicorn.Config(http=...)``): a lean upgrade.

uvicorn's httptools protocol parses a request, and on a WebSocket upgrade it rebuilds
the request's bytes and feeds them to the WebSocket protocol, where websockets parses
them again, builds a ``Request``, a ``Response`` (with a formatted ``Date`` that uvicorn
then replaces) and the ASGI scope from those. That was about a quarter of a
handshake's CPU.

Here, a well-formed handshake request (the kind every client sends) is checked once,
on the headers httptools already parsed, and handed to
:meth:`core.protocol.WsgenProtocol.upgrade` with its ``Sec-WebSocket-Accept`` value;
the 101 is written as prebuilt bytes when the app accepts. Anything else (another
method or HTTP version, a missing or malformed key, version, upgrade token or
subprotocol list, a body, repeated headers websockets refuses) takes uvicorn's path
unchanged, so websockets answers it exactly as before (400, 405, 426...).

Bytes the client sent behind its request, before the 101 (uvicorn drops those that
arrive in the same read), are kept and read once the connection is open.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
from typing import Any

import httptools
from uvicorn.logging import TRACE_LOG_LEVEL
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.utils import is_ssl

from core.protocol import WsgenProtocol

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""An HTTP token (RFC 9110 §5.6.2): what a subprotocol name must be."""
_MAX_LINE = 8192
"""websockets refuses a longer request or header line (414, 431); such a request takes its path."""
_MAX_HEADERS = 128
"""websockets refuses more header lines (431)."""
_SINGLE = frozenset((b"sec-websocket-key", b"sec-websocket-version", b"upgrade", b"origin"))
"""Headers websockets refuses to see twice."""
_REFUSED = frozenset((b"content-length", b"transfer-encoding"))
"""websockets refuses a handshake request with a body."""


def accept_value(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The ``Sec-WebSocket-Accept`` value for a handshake request websockets would
    accept as it is, or None to leave the request to websockets.

    ``headers`` are httptools' (names lower-cased). uvicorn has already checked that
    ``Connection`` lists ``upgrade`` and ``Upgrade`` is ``websocket``.
    """
    if len(headers) > _MAX_HEADERS:
        return None
    key = version = None
    seen: set[bytes] = set()
    for name, value in headers:
        if len(name) + len(value) + 4 > _MAX_LINE:  # with ": " and CRLF
            return None
        if name in _SINGLE:
            if name in seen:
                return None  # websockets: "multiple values"
            seen.add(name)
            if name == b"sec-websocket-key":
                key = value
            elif name == b"sec-websocket-version":
                version = value
            elif name == b"upgrade" and value.strip().lower() != b"websocket":
                return None
        elif name in _REFUSED:
            return None
        elif name == b"sec-websocket-protocol":
            for token in value.split(b","):
                if not _TOKEN.fullmatch(token.strip()):
                    return None
    if version != b"13" or key is None:
        return None
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return None
    except binascii.Error:
        return None
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def local_address(transport: asyncio.BaseTransport) -> tuple[str, int | None] | None:
    """The ASGI ``server`` of a connection, as uvicorn's ``get_local_addr`` gives it."""
    info = transport.get_extra_info("sockname")
    if isinstance(info, str):  # a Unix socket's path
        return (info, None)
    return _host_port(info)


def remote_address(transport: asyncio.BaseTransport) -> tuple[str, int] | None:
    """The ASGI ``client`` of a connection, as uvicorn's ``get_remote_addr`` gives it."""
    return _host_port(transport.get_extra_info("peername"))


def _host_port(info: Any) -> tuple[str, int] | None:
    if isinstance(info, tuple):  # (host, port), or IPv6's (host, port, flowinfo, scope_id)
        return (str(info[0]), int(info[1]))
    return None


class WsgenHttpProtocol(HttpToolsProtocol):
    _upgrade_checked: bool | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """uvicorn's, with both addresses read from what the event loop noted at accept.

        uvicorn asks the socket object for them: with uvloop that is four
        ``getsockname`` and one ``getpeername`` system calls per connection (about
        3 us), for the two addresses uvloop already holds.
        """
        self.connections.add(self)
        self.transport = transport
        self.flow = FlowControl(transport)
        self.server = local_address(transport)
        self.client = remote_address(transport)
        self.scheme = "https" if is_ssl(transport) else "http"
        if self.logger.level <= TRACE_LOG_LEVEL:
            prefix = f"{self.client[0]}:{self.client[1]} - " if self.client else ""
            self.logger.log(TRACE_LOG_LEVEL, "%sHTTP connection made", prefix)

    def on_message_begin(self) -> None:
        self._upgrade_checked = None
        super().on_message_begin()

    def _should_upgrade(self) -> bool:
        """uvicorn asks up to three times per request, scanning the headers each time."""
        checked = self._upgrade_checked
        if checked is None:
            checked = self._upgrade_checked = super()._should_upgrade()
        return checked

    def data_received(self, data: bytes) -> None:
        """uvicorn's, keeping the bytes that follow an upgrade request in the same read."""
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
        except httptools.HttpParserUpgrade as upgrade:
            if self._should_upgrade():
                self._upgrade(data[upgrade.args[0] :] if upgrade.args else b"")
            else:
                self._unsupported_upgrade_warning()

    def _offers_extensions(self) -> bool:
        """Extensions are negotiated by websockets: such a request takes its path when
        permessage-deflate is on (wsgen turns it off)."""
        return any(name == b"sec-websocket-extensions" for name, _ in self.headers)

    def _upgrade(self, rest: bytes) -> None:
        protocol_class = self.ws_protocol_class
        if not (
            isinstance(protocol_class, type)
            and issubclass(protocol_class, WsgenProtocol)
            and self.scope["method"] == "GET"
            and self.scope["http_version"] == "1.1"
            and len(self.url) + 15 <= _MAX_LINE  # "GET ", " HTTP/1.1" and CRLF
            and self.url.isascii()
            and not (self.config.ws_per_message_deflate and self._offers_extensions())
        ):
            self.handle_websocket_upgrade()
            return
        accept = accept_value(self.headers)
        if accept is None:
            self.handle_websocket_upgrade()  # websockets reads (and answers) the request
            return
        self.connections.discard(self)
        protocol = protocol_class(
            config=self.config,
            server_state=self.server_state,
            app_state=self.app_state,
            _loop=self.loop,  # else asked of asyncio: a getpid() system call on Python 3.11
        )
        self.transport.set_protocol(protocol)
        protocol.upgrade(self, accept, rest)
        # The parser calls this object back, and so refers to it: a reference cycle left
        # for the garbage collector, whose passes over a few thousand such handshakes
        # took milliseconds in the middle of message traffic. Now freed at once.
        self.parser = None  # type: ignore[assignment]
