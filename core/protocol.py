"""wsgen's WebSocket protocol class for uvicorn (``uvicorn.Config(ws=...)``).

It is uvicorn's websockets-sansio implementation plus a send path of wsgen's own,
which :class:`~core.connection.Connection` finds in the ASGI scope under
``scope["extensions"]["wsgen.protocol"]`` (without it, connections fall back to
plain ASGI sends; see ``core.sinks``). uvicorn is pinned exactly in pyproject.toml
because this class relies on the internals of that implementation;
``tests/test_protocol.py`` is its contract.

What it adds:

- **Non-blocking sends.** :meth:`send_frame` appends a prebuilt frame (the same
  bytes for every recipient of a broadcast) to this connection's pending list and
  returns at once; the list is written with one ``transport.write`` per event-loop
  pass, so a fan-out never waits on a socket and a burst costs one system call.
- **Backpressure.** While the transport is paused (its buffer is over the high-water
  mark: the peer is not reading), frames stay pending; once more than
  ``queue_limit`` are pending, the connection is closed with 1013 and its pending
  frames are dropped. A stalled reader never delays anyone else. Frames for a
  connection whose close handshake has started are dropped.
- **Closing that cannot hang.** :meth:`close_now` writes the close frame behind what
  was already sent and aborts the transport if the peer has not answered within
  ``close_timeout``: ``transport.close()`` would wait forever on a reader that
  stopped reading. Keepalive timeouts abort the same way.
- **A detached app.** :meth:`detach` lets the app return after the handshake while
  the connection stays open; the protocol then calls it back when messages are
  queued (``core.endpoint._Session``), so an idle connection keeps no task. A text
  message read while none is queued goes to the app as a ``str``, not as an ASGI
  event through the queue.
- **The connection's sink.** ``core.connection.Connection`` hands its frames to
  this object itself (:class:`core.sinks.Sink`), one call from the send to the
  pending list.
- **Shutdown with 1001** (going away), not uvicorn's 1012.
- **A receive path of its own.** Once the handshake is done, complete frames are
  cut from the stream here; an unfragmented, masked text frame within the size
  limit, outside a fragmented message (all a client of this protocol sends), is
  unmasked, decoded and handed to the app directly (see *A detached app*). Any
  other frame (ping, pong, close, binary, fragments, bad UTF-8, reserved bits) is
  handed whole to websockets' parser, which handles it as
  before: websockets then always sits at a frame boundary, so the two never
  disagree on where a frame starts. websockets' generator-based parser cost about
  a fifth of a ping's round trip.
- **Cheaper reads.** The app's receive queue is a list with one waiter instead of
  an ``asyncio.Queue``, and reading pauses only when ``READ_QUEUE_HIGH`` messages
  wait for the app, not after every message.
- **A lean handshake.** With ``core.upgrade.WsgenHttpProtocol`` as uvicorn's HTTP
  protocol, a valid handshake request arrives already parsed (:meth:`upgrade`):
  the scope is built from httptools' headers and the 101 is prebuilt bytes, so
  websockets never parses the request or builds a response.
- **Denial responses** mark the handshake complete, so a refused handshake is not
  also logged as "ASGI callable returned without completing handshake" at ERROR
  (uvicorn 0.54; Kludex/uvicorn PR #3138, open).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import struct
import typing
import uuid
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import unquote

from uvicorn._types import ASGIReceiveEvent, ASGISendEvent, ASGIVersions
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE
from uvicorn.protocols.utils import ClientDisconnected, get_client_addr, get_path_with_query_string
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.protocol import Protocol, State
from websockets.server import ServerProtocol
from websockets.streams import StreamReader

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets without its C extension
    from websockets.utils import apply_mask

from core import metrics
from core.close_codes import CloseCode
from core.deadlines import Deadlines, deadlines
from core.frames import OutFrame
from core.loops import PerLoop

if TYPE_CHECKING:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

EXTENSION = "wsgen.protocol"
_NO_OPTIONS: dict[str, Any] = {}  # an ASGI extension's (empty) options, shared
DEFAULT_QUEUE_LIMIT = 1024
READ_QUEUE_HIGH = 64
"""Received messages waiting for the app before reading from the socket pauses.

uvicorn pauses reading after every message and resumes when the app has taken it:
two epoll changes per message. Pausing only past a backlog keeps the same bound on
memory without that cost."""


_FIN_TEXT = 0x81  # FIN set, no reserved bits, opcode 1 (text)
_SWITCHING = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: "
)


class DetachedApp(typing.Protocol):
    """What :meth:`WsgenProtocol.detach` calls back (``core.endpoint._Session``)."""

    def wake(self) -> None:
        """Messages (or the disconnect) are queued."""

    def handle_now(self, text: str) -> bool:
        """A text message read while none is queued: handle it at once and return
        True, or return False, having done nothing, to have it queued."""


class _Inbox:
    """What ``asyncio.Queue`` does for uvicorn here, for one consumer (the app's receive).

    A list read from a moving head, not a deque: an empty deque costs 760 bytes per
    connection, an empty list 56. Usually it holds a message or two; one read can
    bring thousands of tiny frames, hence no ``pop(0)``.
    """

    __slots__ = ("_head", "_items", "_loop", "_waiter", "app")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: list[Any] = []
        self._head = 0
        self._waiter: asyncio.Future[None] | None = None
        # A detached app, woken for each item (held as is: two bound methods would
        # cost 128 bytes a connection).
        self.app: DetachedApp | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        if self.app is not None:  # a detached app decides how to take it
            self.app.wake()
        else:
            self.interrupt()

    def interrupt(self) -> None:
        """Resolve the waiter (the consumer then re-checks the items, or why it waited)."""
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def wait(self) -> asyncio.Future[None]:
        """A future done when an item comes (for the one consumer)."""
        self._waiter = self._loop.create_future()
        return self._waiter

    def get_nowait(self) -> Any:
        item = self._items[self._head]
        self._head += 1
        if self._head == len(self._items):
            self._items.clear()
            self._head = 0
        return item

    def empty(self) -> bool:
        return self._head == len(self._items)

    def qsize(self) -> int:
        return len(self._items) - self._head


class _Writable:
    """uvicorn's ``writable`` flag (an ``asyncio.Event``, whose waiter deque costs 760
    bytes per connection); a future exists only while someone waits."""

    __slots__ = ("_loop", "_set", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._set = True
        self._waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        while not self._set:
            if self._waiter is None:
                self._waiter = self._loop.create_future()
            await asyncio.shield(self._waiter)


class _FlushScheduler:
    """One ``call_soon`` per event-loop pass flushes every connection with frames pending."""

    __slots__ = ("_dirty", "_loop", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._dirty: list[WsgenProtocol] = []
        self._scheduled = False

    def add(self, protocol: WsgenProtocol) -> None:
        self._dirty.append(protocol)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._run)

    def _run(self) -> None:
        dirty, self._dirty = self._dirty, []
        self._scheduled = False
        for protocol in dirty:
            protocol._flush()


_schedulers = PerLoop(_FlushScheduler)


class _ServerSide(ServerProtocol):
    """websockets' server side, made by ``WsgenProtocol.__init__`` without its ``__init__``.

    Once the connection is open, its frame parser is made when websockets first reads
    (a control frame, or the closing): most connections' frames are all cut by
    ``WsgenProtocol.data_received``. The parser's generator refers to this object,
    so a connection that never needed it also leaves no reference cycle behind.
    """

    parser: Generator[None] | None = None  # type: ignore[assignment]

    @functools.cached_property
    def id(self) -> uuid.UUID:  # type: ignore[override]
        """websockets' id "for logs", which it does not read itself: made when asked."""
        return uuid.uuid4()

    def receive_data(self, data: bytes | bytearray) -> None:
        if self.parser is None:
            self._start_frame_parser()
        super().receive_data(data)

    def receive_eof(self) -> None:
        if self.parser is None:
            self._start_frame_parser()
        super().receive_eof()

    def _start_frame_parser(self) -> None:
        """The parser websockets' server side runs after the handshake (nothing is
        buffered before it starts: the fast path hands over whole frames)."""
        self.parser = Protocol.parse(self)
        next(self.parser)


_PER_CONNECTION = frozenset(("id", "extensions", "reader", "events", "writes", "parser"))
"""What websockets' ``__init__`` makes per connection; ``_conn_fields`` holds the rest."""


def _conn_fields(config: Config, logger: logging.Logger) -> tuple[tuple[str, Any], ...]:
    """The attributes websockets' ``ServerProtocol.__init__`` sets that are the same for
    every connection of a server, from one made as uvicorn's ``__init__`` makes it."""
    extensions = []
    if config.ws_per_message_deflate:
        extensions.append(
            ServerPerMessageDeflateFactory(
                server_max_window_bits=12,
                client_max_window_bits=12,
                compress_settings={"memLevel": 5},
            )
        )
    model = ServerProtocol(extensions=extensions, max_size=config.ws_max_size, logger=logger)
    fields = tuple((k, v) for k, v in vars(model).items() if k not in _PER_CONNECTION)
    for name, value in fields:  # shared by every connection: nothing they could change
        if isinstance(value, (list, dict, set, bytearray)) and name != "available_extensions":
            raise RuntimeError(f"websockets' ServerProtocol.{name} is mutable; see _conn_fields")
    return fields


def _server_class(
    cls: type[WsgenProtocol],
    config: Config,
    server_state: ServerState,
    app_state: dict[str, Any],
    loop: asyncio.AbstractEventLoop,
) -> type[WsgenProtocol]:
    """A subclass of ``cls`` holding, as class attributes, what uvicorn's
    ``__init__`` copies into every connection although the server's connections
    share it (config, app, loop, logger, the server's sets...). One per server."""
    global _last_server_class
    bound = (cls, config, server_state, app_state, loop)
    last = _last_server_class  # the common case: the server of the last connection
    if last is not None and _same_objects(last[0], bound):
        return last[1]
    key = tuple(map(id, bound))
    known = _server_classes.get(key)
    if known is not None and _same_objects(known[0], bound):
        _last_server_class = known
        return known[1]
    if not config.loaded:
        config.load()
    logger = logging.getLogger("uvicorn.error")
    shared = {
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "config": config,
        "app": config.loaded_app,
        "loop": loop,
        "logger": logger,
        "root_path": config.root_path,
        "asgi_version": config.asgi_version,
        "app_state": app_state,
        "server_state": server_state,
        "connections": server_state.connections,
        "tasks": server_state.tasks,
        "ping_interval": config.ws_ping_interval,
        "ping_timeout": config.ws_ping_timeout,
        "_server_scheduler": _schedulers.get(loop),
        "_deadlines": deadlines.get(loop),
        "_conn_fields": _conn_fields(config, logger),
        "_asgi": {"version": config.asgi_version, "spec_version": "2.4"},
    }
    server_class = type(cls.__name__, (cls,), shared)
    if len(_server_classes) >= _SERVER_CLASSES_MAX:
        del _server_classes[next(iter(_server_classes))]  # the oldest
    _server_classes[key] = _last_server_class = (bound, server_class)
    return server_class


def _same_objects(known: tuple[Any, ...], bound: tuple[Any, ...]) -> bool:
    """Identity, element by element (``==`` would compare the app state dicts' contents)."""
    return (
        known[1] is bound[1]
        and known[2] is bound[2]
        and known[0] is bound[0]
        and known[3] is bound[3]
        and known[4] is bound[4]
    )


_server_classes: dict[tuple[int, ...], tuple[tuple[Any, ...], type[WsgenProtocol]]] = {}
"""By the identities of class, config, server state, app state and loop (kept with
the class, so that an id reused by a new object is told apart)."""
_last_server_class: tuple[tuple[Any, ...], type[WsgenProtocol]] | None = None
_SERVER_CLASSES_MAX = 8


class WsgenProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol with wsgen's send and receive paths.

    Instances keep only what differs between connections. CPython shares one key
    table among the instance dicts of a class while the class has fewer than 30
    attribute names; uvicorn's ``__init__`` set 34, so every connection carried a
    full dict of its own (1.5 KiB instead of 0.3). Here what the server's
    connections share lives on a per-server subclass (:func:`_server_class`, which
    ``__new__`` picks), and ``__init__`` sets what a connection uses in its usual
    life, always in the same order.
    """

    # Defaults for what a connection sets only on uncommon paths (uvicorn's own
    # handshake, fragments, closing, a secure scheme, another send-queue limit); the
    # rest is set in __init__.
    scheme: Literal["wss", "ws"] = "ws"
    close_timer: asyncio.TimerHandle | None = None
    close_timeout = 10.0
    initial_response: tuple[int, list[tuple[str, str]], bytes] | None = None
    ping_timer: asyncio.TimerHandle | None = None
    pong_timer: asyncio.TimerHandle | None = None
    # A message's fragments (uvicorn's path); a list once there are some.
    frames: list[bytes] = ()  # type: ignore[assignment]
    curr_msg_data_type: Literal["text", "bytes"] = "bytes"
    request = None  # type: ignore[assignment]  # websockets' handshake objects,
    response = None  # type: ignore[assignment]  # set on uvicorn's path only
    queue_limit = DEFAULT_QUEUE_LIMIT
    _early_data = False  # bytes came before the 101 on uvicorn's path
    # What _server_class puts on the per-server subclass.
    server_state: ServerState
    _server_scheduler: _FlushScheduler
    _deadlines: Deadlines
    _conn_fields: tuple[tuple[str, Any], ...]
    _asgi: ASGIVersions

    def __new__(
        cls,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> WsgenProtocol:
        loop = _loop or asyncio.get_event_loop()
        return super().__new__(_server_class(cls, config, server_state, app_state, loop))

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """uvicorn's ``__init__``, for what is this connection's own.

        Every attribute a connection sets in its usual life is set here, in one order,
        so that all take a place in the shared key table (29 at most): read from the
        class instead, an attribute costs a dictionary miss and a type lookup each time.
        """
        self._inbox = _Inbox(self.loop)
        self.writable = _Writable(self.loop)  # type: ignore[assignment]
        # websockets' ServerProtocol as its __init__ leaves it, minus a uuid4 per
        # connection and the handshake parser, which only uvicorn's path runs
        # (connection_made); set key by key, the instance dict keeps sharing its keys.
        self.conn = conn = _ServerSide.__new__(_ServerSide)
        fields = conn.__dict__
        for name, value in self._conn_fields:
            fields[name] = value
        conn.extensions = []
        conn.reader = StreamReader()
        conn.events = []
        conn.writes = []
        conn.debug = self.logger.isEnabledFor(logging.DEBUG)  # as of now, as __init__ does
        self._pending: list[bytes] = []
        self._scheduler = self._server_scheduler  # read per send on the fan-out path
        self.transport = None  # type: ignore[assignment]
        self.server = self.client = None
        self.scope = None  # type: ignore[assignment]
        self.handshake_initiated = self.handshake_complete = False
        self.close_sent = self.disconnected = self.read_paused = False
        self._paused = self._flush_scheduled = False
        self._fast = False  # frames are cut here (see data_received)
        self._head_pending = False  # the 101 is in _pending, not yet written
        # Set by upgrade(): the handshake's Sec-WebSocket-Accept, and the bytes that
        # came behind the request, until the 101 is sent.
        self._accept: bytes | None = None
        self._early: list[bytes] | None = None
        # The pieces of a frame not yet complete (a list once there are), their size,
        # and the size the frame needs.
        self._unread: list[bytes] | tuple[()] = ()
        self._unread_size = self._unread_need = 0
        self.deadline_key: int | None = None  # the next keepalive ping, or its pong's
        self._awaiting_pong = False
        self.pending_ping_payload = None
        self.ping_sent_at = 0.0
        self._detached = False  # the app returned and is called back (see detach)

    @property
    def queue(self) -> _Inbox:  # type: ignore[override]
        return self._inbox

    @property
    def default_headers(self) -> list[tuple[bytes, bytes]]:  # type: ignore[override]
        """The server's, as of now (its Date changes every second)."""
        return self.server_state.default_headers

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """uvicorn's path: websockets reads the handshake, with its handshake parser."""
        conn = self.conn
        conn.parser = conn.parse()
        next(conn.parser)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # After a close frame the parser waits in discard() for an EOF it never gets:
        # dropped, the closed connection is freed without the garbage collector.
        self._drop_parser()

    # -- the handshake, when core.upgrade has read the request ----------------------

    def upgrade(self, http: HttpToolsProtocol, accept: bytes, rest: bytes) -> None:
        """Take over a connection whose handshake request uvicorn's HTTP protocol has
        parsed and ``core.upgrade`` found valid: the app starts now, and the 101 is
        written when it accepts. uvicorn's ``handle_connect``, minus websockets."""
        self.connections.add(self)
        self.transport = http.transport
        self.server = http.server
        self.client = http.client
        if http.scheme == "https":
            self.scheme = "wss"
        self.handshake_initiated = True
        self._accept = accept
        self._early = [rest] if rest else []
        raw_path, _, query = http.url.decode("ascii").partition("?")
        offered = [
            token.strip()
            for name, value in http.headers
            if name == b"sec-websocket-protocol"
            for token in value.decode().split(",")
        ]
        root_path = self.root_path
        # The scope's constant parts are shared: what a connection keeps is scanned by
        # every garbage collection pass until it is old.
        extensions: dict[str, Any] = {"websocket.http.response": _NO_OPTIONS, EXTENSION: self}
        self.scope = {
            "type": "websocket",
            "asgi": self._asgi,
            "http_version": "1.1",
            "scheme": self.scheme,
            "server": self.server,
            "client": self.client,
            "root_path": root_path,
            "path": root_path + unquote(raw_path),
            "raw_path": root_path.encode("ascii") + raw_path.encode("ascii"),
            "query_string": query.encode("ascii"),
            "headers": http.headers,
            "subprotocols": offered or (),
            "state": http.scope["state"],
            "extensions": extensions,
        }
        self.queue.put_nowait({"type": "websocket.connect"})
        task = self.loop.create_task(self.run_asgi())
        task.add_done_callback(self.on_task_complete)
        self.tasks.add(task)

    def _switch(self, message: Any) -> None:
        """Send the prebuilt 101 for ``upgrade()``'s handshake and open the connection."""
        parts = [_SWITCHING, self._accept or b"", b"\r\n"]
        headers = list(self.default_headers)
        headers.extend((name.lower(), value) for name, value in message.get("headers", ()))
        subprotocol = message.get("subprotocol")
        if subprotocol:
            headers.append((b"Sec-WebSocket-Protocol", subprotocol.encode()))
        for name, value in headers:
            if HEADER_RE.search(name) or HEADER_VALUE_RE.search(value):
                raise RuntimeError(f"Invalid HTTP header in websocket.accept: {name!r}")
            parts += [name, b": ", value, b"\r\n"]
        parts.append(b"\r\n")
        if self.logger.isEnabledFor(logging.INFO):
            client, path = get_client_addr(self.scope), get_path_with_query_string(self.scope)
            self.logger.info('%s - "WebSocket %s" [accepted]', client, path)
        if self.transport.is_closing():
            return  # as uvicorn's: nothing sent, the handshake stays incomplete
        self._accept = None
        early, self._early = self._early, None
        self.handshake_complete = True
        self.conn.state = State.OPEN  # websockets' frame parser: made when it first reads
        # Pending, not written: the app's first frames (its greeting) join it in one write.
        # Whatever would write to the socket directly first writes it (_flush_head).
        self._pending.append(b"".join(parts))
        self._head_pending = True
        self._flush_scheduled = True
        self._scheduler.add(self)
        self.start_keepalive()
        self._fast = True
        if early:
            self.transport.resume_reading()
            self.data_received(b"".join(early))

    def _flush_head(self) -> None:
        """Write the 101 if it is still pending (with what queued behind it): called
        before anything that writes to the socket directly or closes it."""
        if self._head_pending:
            self._flush()

    def _hold_early(self, data: bytes) -> None:
        """Bytes before the 101 (a client that did not wait for it) are read after it;
        past one frame's worth, reading pauses until then."""
        assert self._early is not None
        self._early.append(data)
        if sum(map(len, self._early)) > self.config.ws_max_size + 14:
            self.transport.pause_reading()

    # -- the receive path ---------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._head_pending:
            self._flush()  # replies (pong, close) go after the 101
        if not self._fast:
            if self._early is not None:
                self._hold_early(data)
                return
            if self.handshake_initiated:
                # Bytes after the request, before the 101 (uvicorn hands the request over
                # in one call): websockets may be inside a frame, so it keeps reading.
                self._early_data = True
            super().data_received(data)
            return
        if self._unread:
            self._unread.append(data)
            self._unread_size += len(data)
            if self._unread_size < self._unread_need:
                return  # the frame is still incomplete: join the pieces once, later
            data = b"".join(self._unread)
            self._unread = ()
        if self.close_sent or self.conn.state is not State.OPEN:
            # Closing: what the peer sends now is dropped, its close reply awaited
            # (uvicorn's path, which websockets drives).
            self._leave_fast_path(data)
            return
        end = len(data)
        pos = 0
        need = 0
        max_size = self.config.ws_max_size
        queue = self._inbox
        conn = self.conn
        while pos < end:
            if end - pos < 2:
                break
            first = data[pos]
            length = data[pos + 1] & 0x7F
            start = pos + 6  # 2 header bytes and the 4-byte mask
            if length == 126:
                if end - pos < 4:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 4])
                start += 2
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10])
                start += 8
            if length > max_size or not data[pos + 1] & 0x80:
                # Too big, or unmasked: websockets fails the connection (1009, 1002)
                # as soon as it reads the header, without the payload being buffered.
                self._leave_fast_path(data[pos:])
                return
            stop = start + length
            if stop > end:
                need = stop - pos
                break
            if first == _FIN_TEXT and conn.current_size is None:  # not inside a fragmented one
                try:
                    text = apply_mask(data[start:stop], data[start - 4 : start]).decode()
                except UnicodeDecodeError:
                    pass  # websockets fails it with 1007, below
                else:
                    app = queue.app
                    if app is None or queue._items or not app.handle_now(text):
                        queue.put_nowait({"type": "websocket.receive", "text": text})
                    pos = stop
                    if self.close_sent:  # handled at once, and the app closed: websockets reads on
                        self._leave_fast_path(data[pos:])
                        return
                    continue
            # Any other frame: websockets handles it, whole, as it handled every frame.
            super().data_received(data[pos:stop])
            pos = stop
            if self.close_sent or conn.state is not State.OPEN:
                self._leave_fast_path(data[pos:])
                return
        if pos < end:
            self._unread = [data[pos:]]
            self._unread_size = end - pos
            self._unread_need = need
        if queue._items and not self.read_paused and queue.qsize() >= READ_QUEUE_HIGH:
            self.read_paused = True
            self.transport.pause_reading()

    def _leave_fast_path(self, rest: bytes) -> None:
        """From here on (closing, or a failed connection) websockets reads."""
        self._fast = False
        if rest and not self.transport.is_closing():
            super().data_received(rest)

    # -- the send path ------------------------------------------------------------

    def send_frame(self, frame: OutFrame) -> bool:
        """Send one frame (:class:`core.sinks.Sink`); False once closing or closed.

        Frames join the pending list, written with one ``transport.write`` per
        connection once the event loop has read every socket that was ready. A reply
        thus waits only for the rest of the pass, and every reply of a pass goes out
        together: measured with 100 clients pinging, the server and the clients each
        spend less per round trip than when each reply is written as it is made.
        While the transport is paused (the peer is not reading), more than
        ``queue_limit`` pending frames make it a slow consumer: closed with 1013. A
        burst to a peer that reads is not.
        """
        if self.close_sent or self.disconnected or self.conn.state is not State.OPEN:
            return False  # closing (either side): no data frame may follow a close frame
        pending = self._pending
        pending.append(frame.wire)
        if self._paused:
            if len(pending) > self.queue_limit:
                metrics.limit_closed("slow_consumer")
                self.close_now(CloseCode.TRY_AGAIN_LATER, "slow consumer", drop_pending=True)
                return False
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._scheduler.add(self)
        return True

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._paused or not self._pending:
            return
        self._head_pending = False
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        if not self.close_sent and not self.transport.is_closing():
            self.transport.write(data)

    def close_now(self, code: int, reason: str = "", *, drop_pending: bool = False) -> None:
        """Send a close frame after what is pending (or instead of it) and end the app's reads."""
        if self.close_sent or self.disconnected or self.conn.state is not State.OPEN:
            return
        self._flush_head()
        if drop_pending:
            self._pending.clear()
        else:
            self._paused = False  # what is pending goes out ahead of the close frame
            self._flush()
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        if self.read_paused:  # the peer's close reply must be read; the app reads no more
            self.read_paused = False
            self.transport.resume_reading()
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.abort)

    def pause_writing(self) -> None:
        super().pause_writing()
        self._paused = True

    def resume_writing(self) -> None:
        super().resume_writing()
        self._paused = False
        if self._pending and not self._flush_scheduled:
            self._flush_scheduled = True
            self._scheduler.add(self)

    # -- uvicorn's hooks ----------------------------------------------------------

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][EXTENSION] = self

    async def send(self, message: ASGISendEvent) -> None:
        if (
            message["type"] == "websocket.accept"
            and self._accept is not None
            and not self.handshake_complete
            and self.initial_response is None
        ):
            await self.writable.wait()
            if self.disconnected:
                raise ClientDisconnected()
            self._switch(message)
            return
        self._flush_head()
        if message["type"] == "websocket.close" and self.handshake_complete:
            # Same as uvicorn's, but never waits for a paused transport to drain.
            self.close_now(message.get("code", 1000), message.get("reason") or "")
            return
        await super().send(message)
        if message["type"] == "websocket.accept":
            # websockets' parser is now between frames, unless bytes came after the
            # request (a client that did not wait for the 101): then websockets reads.
            self._fast = self.conn.state is State.OPEN and not self._early_data
            if self._fast:
                self._forget_handshake()
        elif message["type"] == "websocket.http.response.body" and not message.get(
            "more_body", False
        ):
            self.handshake_complete = True

    def _forget_handshake(self) -> None:
        """Drop the handshake's request and response: about 2 KiB a connection holds
        for nothing. websockets' parser keeps the request in its generator's frame,
        so it goes too; the frame parser that replaces it starts with nothing
        buffered, so no byte is lost."""
        self.request = self.response = None
        self._drop_parser()

    def _drop_parser(self) -> None:
        """Drop websockets' parser, a generator that refers to its connection (and,
        after the handshake, to the request): a new frame parser is made when websockets
        next reads (see _ServerSide)."""
        cast(_ServerSide, self.conn).parser = None

    def send_receive_event_to_app(self) -> None:
        """uvicorn's, but reading pauses only past ``READ_QUEUE_HIGH`` waiting messages."""
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = ()  # type: ignore[assignment]
        if self.close_sent:
            return
        if self.curr_msg_data_type == "text":
            try:
                self.queue.put_nowait({"type": "websocket.receive", "text": data.decode()})
            except UnicodeDecodeError:  # websockets validates UTF-8 first; kept as uvicorn has it
                self.conn.send_close(1007)
                self.handle_parser_exception()
                return
        else:
            self.queue.put_nowait({"type": "websocket.receive", "bytes": data})
        if not self.read_paused and self.queue.qsize() >= READ_QUEUE_HIGH:
            self.read_paused = True
            self.transport.pause_reading()

    # -- a detached app ------------------------------------------------------------

    def detach(self, app: DetachedApp) -> None:
        """The app will return without closing the connection; ``app.wake()`` is
        called whenever a message (or the disconnect) is queued, and the app takes
        them with :meth:`next_message`. An idle connection then keeps no task alive.

        A text frame read while nothing is queued is first offered to
        ``app.handle_now(text)``: the usual message of a connection then costs no
        ASGI event and no round through the queue."""
        self._detached = True
        self._inbox.app = app
        if not self._inbox.empty():
            app.wake()

    def release(self) -> None:
        """The app is done with this connection: drop the references back to this
        object (the app's wake-up, the scope's extension entry), so that the closed
        connection is freed by reference counting when the transport lets it go,
        not by a later garbage collection pass over every object it held."""
        self._inbox.app = None
        if self.scope is not None:
            self.scope["extensions"].pop(EXTENSION, None)

    async def stop(self) -> None:
        """The connection is over for the app (:class:`core.sinks.Sink`)."""
        self.release()

    def message_waiting(self) -> asyncio.Future[None]:
        """Done when a message is queued (or :meth:`interrupt_wait` is called)."""
        return self._inbox.wait()

    def interrupt_wait(self) -> None:
        self._inbox.interrupt()

    def next_message(self) -> ASGIReceiveEvent | None:
        """The next queued message, or None (the next one comes through ``wake``, or
        ``handle_now`` for a text frame)."""
        queue = self._inbox
        if not queue._items:  # empty (the list is cleared when its last item is taken)
            return None
        message: ASGIReceiveEvent = queue.get_nowait()
        if self.read_paused and queue.empty():
            self.read_paused = False
            self.transport.resume_reading()
        return message

    async def run_asgi(self) -> None:
        """uvicorn's, except that a detached app's return does not close the connection."""
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            self.logger.exception("Exception in ASGI application\n")
            self.send_500_response()
        else:
            if not self.handshake_complete:
                self.logger.error("ASGI callable returned without completing handshake.")
                self.send_500_response()
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
        if self.close_timer is None and not self._detached:
            self._flush_head()
            self.transport.close()

    async def receive(self) -> ASGIReceiveEvent:
        """uvicorn's ``receive`` (the ASGI callable), without a coroutine in between."""
        queue = self._inbox
        while queue.empty():
            await queue.wait()
        message: ASGIReceiveEvent = queue.get_nowait()
        if self.read_paused and queue.empty():
            self.read_paused = False
            self.transport.resume_reading()
        return message

    def shutdown(self) -> None:
        """Server shutdown: close open connections with 1001 (going away)."""
        if self.handshake_complete and not self.close_sent and not self.disconnected:
            self.stop_keepalive()
            self.close_now(CloseCode.GOING_AWAY, "server shutting down")
            return
        super().shutdown()

    # -- keepalive, on the loop's shared deadlines (core.deadlines), not two timers --

    def schedule_ping(self) -> None:
        self._awaiting_pong = False
        # uvicorn's delay, ping_interval less the last round trip: the next ping goes
        # ping_interval after the last one was sent (or after now, before the first).
        interval = self.ping_interval or 0.0
        now = self.loop.time()
        due = max(now, self.ping_sent_at + interval) if self.ping_sent_at else now + interval
        self._deadlines.set(self, due)

    def stop_keepalive(self) -> None:
        self._deadlines.set(self, None)
        self._awaiting_pong = False
        self.pending_ping_payload = None

    def deadline_passed(self) -> None:
        if self._awaiting_pong:
            self._awaiting_pong = False
            self.keepalive_timeout()
        else:
            self.send_keepalive_ping()

    def send_keepalive_ping(self) -> None:
        """uvicorn's, with the pong's deadline on the shared deadlines."""
        if self.close_sent or self.transport.is_closing():
            return
        self._flush_head()
        self.pending_ping_payload = struct.pack("!I", random.getrandbits(32))
        self.ping_sent_at = self.loop.time()
        self.conn.send_ping(self.pending_ping_payload)
        self.transport.write(b"".join(self.conn.data_to_send()))
        if self.ping_timeout is not None:
            self._awaiting_pong = True
            self._deadlines.set(self, self.loop.time() + self.ping_timeout)
        else:
            self.schedule_ping()

    def handle_pong(self, event: Any) -> None:
        """uvicorn's: the pong of the ping in flight schedules the next ping."""
        if self.pending_ping_payload is None or bytes(event.data) != self.pending_ping_payload:
            return
        self.pending_ping_payload = None
        if self._awaiting_pong:
            self.schedule_ping()

    def keepalive_timeout(self) -> None:
        if self.close_sent or self.transport.is_closing():
            self.pending_ping_payload = None
            return  # closing already: let the close finish (uvicorn's check)
        metrics.limit_closed("ping_timeout")
        self._flush_head()
        super().keepalive_timeout()
        self.transport.abort()  # the peer is gone; do not wait for its buffer to drain

    def handle_events(self) -> None:
        """uvicorn's, after what is pending: frames made before the peer's frames were
        read (replies, broadcasts) go out before anything written in answer to them (a
        pong, the reply to a close), which uvicorn writes at once."""
        self._flush()
        super().handle_events()

    def handle_parser_exception(self) -> None:
        # websockets failed the connection on a bad frame; 1009 is a frame over ws_max_size.
        close = self.conn.close_sent
        if close is not None and close.code == CloseCode.MESSAGE_TOO_BIG:
            metrics.limit_closed("too_big")
        self._flush()  # replies to the frames before the bad one go out before the close
        super().handle_parser_exception()
