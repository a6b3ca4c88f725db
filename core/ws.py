"""The handler type that handler files export as ``config``, and what hooks receive.

A handler file declares one route::

    config = WebSocketHandler(
        path="/ws/example/:id",
        middleware=[auth_middleware()],
        on_connect=on_connect,
        on_close=on_close,
        events=[
            Event("ping", on_ping),
            Event("chat.message", on_chat_message, model=ChatMessageIn),
        ],
    )

Hook semantics (the runtime in ``core.endpoint`` enforces them):

- ``middleware`` run in order before the upgrade; one may raise ``Reject`` to
  refuse the handshake with an HTTP status, or set ``ctx.user_id`` / ``ctx.state``.
- ``on_connect(ctx, ws)`` runs right after the upgrade. If it raises, the failure is
  logged and the connection is closed with 1011.
- each inbound message goes to the ``Event`` of its name, with its data validated
  against ``model``; messages with no matching ``Event`` go to ``on_message`` when
  given, and are answered ``unknown_event`` otherwise. A handler that raises gets the
  sender an ``internal_error``; the connection stays open.
- ``on_close(ctx, ws)`` runs exactly once for every accepted connection, whatever
  happened before (it plays the role of Starlette's ``on_disconnect``).
- ``on_error(ctx, ws, error)`` runs after a hook failed, once the failure is logged.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from core.errors import ConfigError
from core.routing import RoutePath, parse_path

if TYPE_CHECKING:
    from core.connection import Connection
    from core.context import Context
    from core.envelope import Inbound

Middleware = Callable[["Context"], Awaitable[None]]
LifecycleHook = Callable[["Context", "Connection"], Awaitable[None]]
MessageHook = Callable[["Context", "Connection", "Inbound"], Awaitable[Any]]
ErrorHook = Callable[["Context", "Connection", BaseException], Awaitable[None]]


@dataclass(slots=True)
class Event:
    """One client event a route accepts, with the model its data must match.

    ``handler(ctx, ws, message)`` gets an ``Inbound`` whose ``data`` is the
    validated model instance. What it returns (a dict or ``None``) is merged into
    the ``ack`` sent when the client gave a ``ref``. ``model=None`` means the event
    carries no data (an absent or empty object is accepted).

    ``pipeline=True``: the handler runs as its own task while the connection's next
    messages are read (at most ``MAX_PIPELINE`` at once), instead of before them.
    Only for handlers that keep their own order, e.g. by awaiting the store, whose
    group commit resumes its callers in the order they wrote: then a burst of chat
    messages is stored in one transaction and broadcast in one write per socket.
    A later message that is not pipelined waits for it, so replies keep their order.
    """

    name: str
    handler: MessageHook
    model: Any = None
    pipeline: bool = False
    adapter: TypeAdapter[Any] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not inspect.iscoroutinefunction(self.handler):
            raise ConfigError(f"event {self.name!r}: handler must be an `async def` function")
        # No model: the envelope parser already guarantees an object or nothing.
        self.adapter = None if self.model is None else TypeAdapter(self.model)


@dataclass(slots=True)
class WebSocketHandler:
    """A WebSocket route: its path, middleware chain and lifecycle hooks."""

    path: str
    middleware: Sequence[Middleware] = ()
    on_connect: LifecycleHook | None = None
    on_message: MessageHook | None = None
    on_close: LifecycleHook | None = None
    on_error: ErrorHook | None = None
    events: Sequence[Event] = ()
    route: RoutePath = field(init=False, repr=False)
    event_table: dict[str, Event] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.route = parse_path(self.path)
        self.middleware = tuple(self.middleware)
        for name in ("on_connect", "on_message", "on_close", "on_error"):
            hook = getattr(self, name)
            if hook is not None and not inspect.iscoroutinefunction(hook):
                raise ConfigError(f"{name} of {self.path!r} must be an `async def` function")
        self.event_table = {}
        for event in self.events:
            if event.name in self.event_table:
                raise ConfigError(f"{self.path!r} declares the event {event.name!r} twice")
            self.event_table[event.name] = event
