"""The lifecycle of one connection on one route: middleware, upgrade, hooks, close.

Every hook failure is caught and logged here, in :meth:`RouteEndpoint._failed`,
with the phase, route, connection id, user id and traceback (SPEC §9), so that a
handler bug never reaches another connection or the server:

- middleware raising anything but ``Reject``: the handshake is refused with 500;
- ``on_connect``: the connection is closed with 1011;
- an event handler or ``on_message``: the sender gets ``internal_error``, the
  connection stays open;
- ``on_close`` / ``on_error``: logged, nothing else to do;
- a failure of this module's own message handling: logged (phase ``receive``),
  the connection closed with 1011.

On wsgen's protocol class the ASGI app returns once ``on_connect`` is done and the
protocol calls the connection's :class:`_Session` back when messages come, so an
idle connection holds no task (see ``_Session``); on any other server the app's task
reads messages with ``receive`` as ASGI apps do.
"""

from __future__ import annotations

import asyncio
import contextvars
import types
from asyncio.tasks import _enter_task, _leave_task
from collections.abc import Coroutine, Generator, Mapping
from time import monotonic
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import QueryParams
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from core import metrics
from core.close_codes import CloseCode
from core.connection import Connection
from core.context import Context
from core.envelope import Inbound, ProtocolError, Ref, parse
from core.errors import ClientError, Reject
from core.limits import RateLimiter
from core.logging import get_logger
from core.loops import PerLoop
from core.protocol import EXTENSION, WsgenProtocol
from core.refresh import BUILTIN_EVENTS
from core.services import Services
from core.settings import origins
from core.sinks import Sink, sink_for
from core.validation import describe
from core.ws import MessageHook, WebSocketHandler

log = get_logger("wsgen.endpoint")

MAX_PIPELINE = 64
"""Pipelined handlers (``Event(pipeline=True)``) running at once for one connection."""


_NO_QUERY = QueryParams()
"""Shared by the connections whose URL has no query (immutable; parsing one costs µs)."""


class RouteEndpoint:
    """The ASGI app of one handler's route (one instance per route)."""

    def __init__(self, handler: WebSocketHandler, services: Services) -> None:
        self.handler = handler
        self.services = services
        self.route = handler.path
        self._max_bytes = services.settings.max_message_bytes
        self._queue_limit = services.settings.send_queue_max
        self._origins = origins(services.settings)
        self._events = {**BUILTIN_EVENTS, **handler.event_table}
        self._metrics = metrics.RouteMetrics(self.route, self._events)
        settings = services.settings
        self._rate_message = (
            f"over {settings.rate_limit:g} messages per second; this message was dropped"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        ctx = Context(
            route=self.route,
            path_params=websocket.path_params,
            headers=websocket.headers,
            query_params=websocket.query_params if scope.get("query_string") else _NO_QUERY,
            subprotocols=tuple(scope.get("subprotocols", ())),
            services=self.services,
        )
        if not await self._run_middleware(ctx, websocket):
            return
        await websocket.accept(subprotocol=ctx.subprotocol)
        sink = sink_for(websocket, self._queue_limit)
        conn = Connection(sink, self.route, ctx.user_id)
        conn.expire_at(ctx.expires_at)
        self._metrics.open.inc()
        session = _Session(self, ctx, conn, sink)
        protocol = scope.get("extensions", {}).get(EXTENSION)
        detached = False
        try:
            if not await self._connect(ctx, conn):
                return
            if isinstance(protocol, WsgenProtocol):
                # From here the protocol hands this connection its messages (see
                # _Session): an idle connection keeps no task and no coroutine.
                session.protocol = protocol
                protocol.detach(session)
                detached = True
                return
            while not session.finished:
                await self._handle(session, await receive())
        finally:
            if not detached:
                await session.finish()

    def _handle(self, session: _Session, message: Mapping[str, Any]) -> Coroutine[Any, Any, None]:
        """The handling of one ASGI message of the connection (a coroutine to await)."""
        if message.get("type") == "websocket.receive" and (text := message.get("text")) is not None:
            return self._receive(session, text)
        return self._receive_other(session, message)

    async def _receive(self, session: _Session, text: str) -> None:
        """Act on one text message; finish the session if the connection is now closed."""
        conn = session.conn
        try:
            # The protocol layer refuses larger frames already; this holds on any server.
            # A character is at most 4 UTF-8 bytes: encode only when it could be too big.
            if len(text) * 4 > self._max_bytes and len(text.encode()) > self._max_bytes:
                self._metrics.invalid.inc()
                metrics.limit_closed("too_big")
                await conn.close(CloseCode.MESSAGE_TOO_BIG, "message too big")
            elif (limiter := session.limiter) is not None and not limiter.allow(monotonic()):
                if not await self._rate_limited(session.ctx, conn, limiter, text):
                    return
            else:
                await self._dispatch(session.ctx, conn, text, session.pipelined)
                if not conn.closed:
                    return
            await session.finish()
        except Exception as exc:  # a bug of ours, not a handler's (those are caught inside)
            await self._receive_failed(session, exc)

    async def _receive_other(self, session: _Session, message: Mapping[str, Any]) -> None:
        """The disconnect, or a binary message (refused: closed with 1003)."""
        try:
            if message.get("type") == "websocket.disconnect":
                session.conn.gone(message.get("code"))
            else:
                self._metrics.invalid.inc()
                await session.conn.close(
                    CloseCode.UNSUPPORTED_DATA, "binary frames are not accepted"
                )
            await session.finish()
        except Exception as exc:
            await self._receive_failed(session, exc)

    async def _receive_failed(self, session: _Session, exc: Exception) -> None:
        self._failed("receive", session.ctx, session.conn, exc)
        await session.conn.close(CloseCode.INTERNAL_ERROR, "internal error")
        await session.finish()

    async def _finish(self, session: _Session) -> None:
        """The connection is over: let its work end, run on_close, forget it."""
        ctx, conn = session.ctx, session.conn
        self._metrics.open.dec()  # first, so that a failing clean-up cannot leak it
        await _drain(session.pipelined)  # stored messages are broadcast even if their sender left
        conn.expire_at(None)
        if self.handler.on_close is not None:
            try:
                await self.handler.on_close(ctx, conn)
            except Exception as exc:
                self._failed("on_close", ctx, conn, exc)
        # Whatever on_close did or failed to do, no ghost stays in the hub.
        await self.services.hub.discard(conn)
        await conn.close(CloseCode.NORMAL_CLOSURE)
        await session.sink.stop()

    async def _run_middleware(self, ctx: Context, websocket: WebSocket) -> bool:
        try:
            self._check_origin(ctx)
            for middleware in self.handler.middleware:
                await middleware(ctx)
        except Reject as rejection:
            await deny(websocket, rejection)
            self._metrics.refused(rejection.status)
            log.info(
                "handshake refused",
                route=self.route,
                status=rejection.status,
                code=rejection.code,
            )
            return False
        except Exception as exc:
            self._failed("middleware", ctx, None, exc)
            await deny(websocket, Reject(500, "internal_error", "the handshake failed"))
            self._metrics.refused(500)
            return False
        return True

    def _check_origin(self, ctx: Context) -> None:
        """403 for a browser Origin outside ``WSGEN_ALLOWED_ORIGINS`` (when set)."""
        origin = ctx.headers.get("origin")
        if self._origins and origin is not None and origin.rstrip("/") not in self._origins:
            raise Reject(403, "forbidden_origin", "this Origin may not connect")

    async def _connect(self, ctx: Context, conn: Connection) -> bool:
        if self.handler.on_connect is None:
            return True
        conn.hold(self._queue_limit)  # the hook's greeting goes before any hub delivery
        try:
            await self.handler.on_connect(ctx, conn)
        except Exception as exc:
            self._failed("on_connect", ctx, conn, exc)
            await self._on_error(ctx, conn, exc)
            await conn.close(CloseCode.INTERNAL_ERROR, "on_connect failed")
            return False
        finally:
            conn.release()
        return True

    async def _rate_limited(
        self, ctx: Context, conn: Connection, limiter: RateLimiter, text: str
    ) -> bool:
        """Drop a message over the rate limit; True when the connection was closed (1008)."""
        self._metrics.dropped.inc()
        if limiter.flooding(monotonic()):
            metrics.limit_closed("flood")
            log.warning(
                "connection closed for flooding",
                route=self.route,
                connection_id=conn.id,
                user_id=ctx.user_id,
            )
            await conn.close(CloseCode.POLICY_VIOLATION, "too many messages")
            return True
        try:
            ref = parse(text).ref
        except ProtocolError as err:
            ref = err.ref
        await conn.send_error("rate_limited", self._rate_message, ref)
        return False

    def _dispatch(
        self,
        ctx: Context,
        conn: Connection,
        text: str,
        pipelined: dict[asyncio.Task[None], None],
    ) -> Coroutine[Any, Any, None]:
        """Parse, route and validate one message: what is left to do is returned, as a
        coroutine to await (usually its handler's :meth:`_invoke`, one coroutine less)."""
        try:
            inbound = parse(text)
        except ProtocolError as err:
            self._metrics.invalid.inc()
            return self._reply_error(conn, pipelined, err.code, err.message, err.ref)
        # Only declared event names become label values (SPEC §9, bounded cardinality).
        self._metrics.received.get(inbound.event, self._metrics.unknown).inc()
        event = self._events.get(inbound.event)
        if event is None:
            hook = self.handler.on_message
            if hook is None:
                message = f"{inbound.event[:64]!r} is not accepted on {self.route}"
                return self._reply_error(conn, pipelined, "unknown_event", message, inbound.ref)
        else:
            if event.adapter is not None:
                try:
                    inbound.data = event.adapter.validate_python(
                        {} if inbound.data is None else inbound.data
                    )
                except ValidationError as exc:
                    return self._reply_error(
                        conn, pipelined, "invalid_payload", describe(exc), inbound.ref
                    )
            hook = event.handler
            if event.pipeline:
                return self._pipeline(ctx, conn, inbound, hook, pipelined)
        # Everything a connection sends is answered and relayed in the order it came:
        # a message that is not pipelined waits for the pipelined ones before it.
        return self._invoke(ctx, conn, inbound, hook, pipelined)

    async def _reply_error(
        self,
        conn: Connection,
        pipelined: dict[asyncio.Task[None], None],
        code: str,
        message: str,
        ref: Ref | None,
    ) -> None:
        """Answer ``error``, after the replies of the pipelined messages before it."""
        await _drain(pipelined)
        await conn.send_error(code, message, ref)

    async def _pipeline(
        self,
        ctx: Context,
        conn: Connection,
        inbound: Inbound,
        hook: MessageHook,
        pipelined: dict[asyncio.Task[None], None],
    ) -> None:
        """Start a pipelined handler in its own task (the connection reads on)."""
        if len(pipelined) >= MAX_PIPELINE:
            await next(iter(pipelined))  # the oldest; bounds the work per connection
        task = asyncio.get_running_loop().create_task(self._invoke(ctx, conn, inbound, hook))
        pipelined[task] = None
        task.add_done_callback(pipelined.pop)

    async def _invoke(
        self,
        ctx: Context,
        conn: Connection,
        inbound: Inbound,
        hook: MessageHook,
        after: dict[asyncio.Task[None], None] | None = None,
    ) -> None:
        """Run a message's handler, once the tasks in ``after`` are done; its failures
        become `error` replies and one log record."""
        if after:
            await _drain(after)
        try:
            result = await hook(ctx, conn, inbound)
        except ClientError as err:
            await conn.send_error(err.code, err.message, inbound.ref)
            return
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise  # the connection's task is being cancelled
            # Not a cancellation of this task (e.g. the handler awaited something that
            # another task cancelled): the handler failed, like any other exception.
            await self._handler_failed(ctx, conn, inbound, exc)
            return
        except Exception as exc:
            await self._handler_failed(ctx, conn, inbound, exc)
            return
        if inbound.ref is not None:
            await conn.send("ack", ack_payload(inbound, result))

    async def _handler_failed(
        self, ctx: Context, conn: Connection, inbound: Inbound, exc: BaseException
    ) -> None:
        self._failed("on_message", ctx, conn, exc, message_event=inbound.event)
        await self._on_error(ctx, conn, exc)
        await conn.send_error(
            "internal_error", "the server failed to handle this message", inbound.ref
        )

    async def _on_error(self, ctx: Context, conn: Connection, error: BaseException) -> None:
        if self.handler.on_error is None:
            return
        try:
            await self.handler.on_error(ctx, conn, error)
        except Exception as exc:
            self._failed("on_error", ctx, conn, exc)

    def _failed(
        self,
        phase: str,
        ctx: Context,
        conn: Connection | None,
        exc: BaseException,
        **fields: Any,
    ) -> None:
        """The one place a hook failure is logged (and counted)."""
        metrics.hook_failed(phase)
        log.error(
            "handler failed",
            phase=phase,
            route=self.route,
            connection_id=conn.id if conn is not None else None,
            user_id=ctx.user_id,
            error=type(exc).__name__,
            exc_info=exc,
            **fields,
        )


IDLE_RELEASE = 2.0
"""Seconds (one to two sweeps) without a message after which a connection's task ends."""


class _Session:
    """One accepted connection's state between its messages.

    On wsgen's protocol the session is *detached*: the ASGI app returns after
    ``on_connect`` and the protocol calls :meth:`wake` when a message (or the
    disconnect) arrives. A task then handles the messages in order and waits for
    more; after :data:`IDLE_RELEASE` without one, :class:`_IdleSweeper` lets it end.
    A connection that is idle thus holds no task and no suspended coroutines (about
    2.5 KiB each), while a busy one keeps its task. On other servers the app's own
    task loops over ``receive`` as usual.

    While the task waits for messages (*parked*), a message is handled at once, in
    the protocol's read callback, instead of waking the task for it (what Python
    3.12's eager tasks do for new tasks): the session's task is made the current
    task and its context the current context meanwhile, so handlers see what they
    would see in the task (``asyncio.current_task()``, ``asyncio.timeout()``,
    context variables). A handler that has to wait is handed to the task, which
    continues it from where it stopped; messages that come meanwhile queue behind
    it, so they are still handled one after another, in order.
    """

    __slots__ = (
        "active",
        "conn",
        "context",
        "ctx",
        "endpoint",
        "finished",
        "handover",
        "limiter",
        "parked",
        "pipelined",
        "protocol",
        "release",
        "sink",
        "task",
    )

    def __init__(self, endpoint: RouteEndpoint, ctx: Context, conn: Connection, sink: Sink) -> None:
        self.endpoint = endpoint
        self.ctx = ctx
        self.conn = conn
        self.sink = sink
        self.limiter = RateLimiter.from_settings(endpoint.services.settings, monotonic())
        self.pipelined: dict[asyncio.Task[None], None] = {}
        self.protocol: WsgenProtocol | None = None
        self.task: asyncio.Task[None] | None = None
        self.context = contextvars.copy_context()
        self.finished = False
        self.active = False  # a message came since the sweeper's last look
        self.release = False  # the sweeper asks the task to end
        self.parked = False  # the task waits for messages, and nothing is handed to it
        # A handler started outside the task that has to wait: (coroutine, what it
        # waits on), for the task to continue.
        self.handover: tuple[Coroutine[Any, Any, None], Any] | None = None

    def wake(self) -> None:
        """Messages are waiting: handle them, unless a task already is."""
        if self.finished or self.protocol is None:
            return
        if self.task is None:
            # The session's own context: no copy per task (one runs at a time).
            task = self.protocol.loop.create_task(self._run(), context=self.context)
            self.task = task
            self.protocol.tasks.add(task)  # uvicorn's shutdown waits for these
            _sweepers.get(self.protocol.loop).watch(self)
        elif self.parked and not self.handle_now(None):
            # Inside another task (e.g. one closing this connection, whose disconnect is
            # queued from there): wake ours instead.
            self.parked = False
            self.protocol.interrupt_wait()
        # Otherwise the task is handling a message and takes this one next.

    def handle_now(self, text: str | None) -> bool:
        """Handle ``text`` (a text message read while none was queued), then the queued
        messages, now, as the parked task would (see the class). False, with nothing
        done, when the task is not parked, the session is finished, or this runs
        inside another task: then ``text`` is to be queued (the task takes it next, or
        is woken for it)."""
        if not self.parked or self.finished:
            return False
        protocol, task = self.protocol, self.task
        assert protocol is not None and task is not None
        loop = protocol.loop
        if text is None:
            # wake(), possibly inside another task: asked first, because the error
            # _enter_task would raise formats both tasks' reprs, some 20 us.
            if asyncio.current_task(loop) is not None:
                return False
            _enter_task(loop, task)
        else:
            # A text frame read by the loop's read callback, outside any task (a test
            # may feed one from inside a task: then it is queued).
            try:
                _enter_task(loop, task)
            except RuntimeError:
                return False
        self.parked = False  # no re-entry: a message queued meanwhile waits its turn
        try:
            while not self.finished:
                if text is not None:
                    coroutine = self.endpoint._receive(self, text)
                    text = None
                else:
                    message = protocol.next_message()
                    if message is None:
                        self.parked = True
                        return True
                    coroutine = self.endpoint._handle(self, message)
                self.active = True
                try:
                    waiting_on = self.context.run(coroutine.send, None)
                except StopIteration:
                    continue
                except BaseException as exc:  # e.g. CancelledError: the task raises it
                    coroutine, waiting_on = _reraise(exc), None
                if asyncio.isfuture(waiting_on):
                    # The flag tells the task that gets the future to wait for it, and is
                    # reset there. Ours gets it later (_resume sets it again): meanwhile
                    # another task may await the same future and must find it unset.
                    waiting_on._asyncio_future_blocking = False
                self.handover = (coroutine, waiting_on)
                protocol.interrupt_wait()
                return True
            protocol.interrupt_wait()  # finished: the task ends
            return True
        finally:
            _leave_task(loop, task)

    async def _run(self) -> None:
        protocol = self.protocol
        assert protocol is not None
        try:
            while True:
                handover = self.handover
                if handover is not None:  # even when finishing: it may be the finish
                    self.handover = None
                    await _resume(*handover)
                    continue
                if self.finished:
                    return
                message = protocol.next_message()
                if message is None:
                    if self.release:
                        return
                    self.parked = True
                    try:
                        await protocol.message_waiting()
                    except GeneratorExit:
                        raise
                    except BaseException as exc:
                        # E.g. cancelled while a handler handed over waits: it gets the
                        # exception, as it would have inside the task.
                        if self.handover is None:
                            raise
                        handover, self.handover = self.handover, None
                        await _resume(*handover, exc)
                    finally:
                        self.parked = False
                    continue
                self.active = True
                await self.endpoint._handle(self, message)
        finally:
            protocol.tasks.discard(self.task)
            self.task = None
            self.release = False
            self.parked = False

    def sweep(self) -> bool:
        """The sweeper's look; True while the session's task should still be watched."""
        if self.task is None:
            return False
        if self.active:
            self.active = False
            return True
        self.release = True  # idle for a whole sweep: let the task end
        assert self.protocol is not None
        self.protocol.interrupt_wait()
        return False

    async def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        await self.endpoint._finish(self)


async def _reraise(error: BaseException) -> None:
    raise error


@types.coroutine
def _resume(
    coroutine: Coroutine[Any, Any, None], waiting_on: Any, error: BaseException | None = None
) -> Generator[Any, Any, None]:
    """Continue, inside a task, a coroutine that ran outside one until it had to wait
    on ``waiting_on``: what ``await`` does, from its second step on. ``error`` came to
    the task meanwhile: as ``Task.cancel()`` does, a cancellation cancels the future
    waited on (the coroutine sees it there); anything else is thrown in first."""
    if (
        isinstance(error, asyncio.CancelledError)
        and asyncio.isfuture(waiting_on)
        and waiting_on.cancel(error.args[0] if error.args else None)
    ):
        error = None
    if error is None and asyncio.isfuture(waiting_on):
        waiting_on._asyncio_future_blocking = True  # as the await that yielded it left it
    while True:
        if error is None:
            try:
                sent = yield waiting_on
            except BaseException as exc:  # thrown in by the task, e.g. its cancellation
                error = exc
        try:
            if error is None:
                waiting_on = coroutine.send(sent)
            else:
                thrown, error = error, None
                waiting_on = coroutine.throw(thrown)
        except StopIteration:
            return


class _IdleSweeper:
    """Every :data:`IDLE_RELEASE` / 2 seconds, ends the tasks of sessions that got no
    message since the previous sweep. One timer per event loop, armed only while some
    session has a task."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._sessions: set[_Session] = set()
        self._armed = False  # (the timer's handle is not kept: it refers to its loop)

    def watch(self, session: _Session) -> None:
        self._sessions.add(session)
        if not self._armed:
            self._armed = True
            self._loop.call_later(IDLE_RELEASE / 2, self._sweep)

    def _sweep(self) -> None:
        self._sessions = {session for session in self._sessions if session.sweep()}
        self._armed = bool(self._sessions)
        if self._armed:
            self._loop.call_later(IDLE_RELEASE / 2, self._sweep)


_sweepers = PerLoop(_IdleSweeper)


async def _drain(pipelined: dict[asyncio.Task[None], None]) -> None:
    if pipelined:
        await asyncio.gather(*pipelined)


def ack_payload(inbound: Inbound, result: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"ref": inbound.ref}
    if isinstance(result, dict):
        payload.update(result)
    return payload


async def deny(websocket: WebSocket, rejection: Reject) -> None:
    """Refuse the handshake with an HTTP response, before the upgrade (SPEC §4)."""
    await websocket.send_denial_response(
        JSONResponse({"error": rejection.code, "message": rejection.message}, rejection.status)
    )
