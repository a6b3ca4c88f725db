"""Prometheus metrics of the server, served at ``GET /metrics`` (SPEC §7, §9).

Every metric is a module-level ``prometheus_client`` object in :data:`REGISTRY`, a
``CollectorRegistry`` of our own rather than the library's global default, so that
importing wsgen never adds to (or clashes with) whatever else a process registers.
The objects are still **process-global**: several apps in one process (tests, or two
apps sharing one in-process bus) add to the same series, and a test compares values
before and after rather than expecting zeros. That is the simplest sound choice: the
hot paths (receive loop, hub fan-out, ``Connection.send``) reach a module global, not
``services``, and a deployment runs one app per process anyway. With
``wsgen serve --workers N`` each worker process has its own values: scrape each
process (one port per process), since prometheus_client's multiprocess mode is not
set up here.

Metrics (label values are bounded; nothing a client or a message body controls ever
becomes a label value — SPEC §9: no tokens, chat text, notification bodies or
signaling data):

- ``wsgen_connections_open{route}`` (gauge): accepted connections now open.
- ``wsgen_messages_received_total{route, event}``: client frames. ``event`` is the
  event name when the route declares it (its ``events`` and the built-in
  ``auth.refresh``), ``unknown`` for any other name (also when a catch-all
  ``on_message`` handles it), ``invalid`` for frames that fail envelope parsing,
  binary frames and frames over the size limit, ``dropped`` for frames over the rate
  limit (answered ``rate_limited``, never dispatched).
- ``wsgen_messages_sent_total{event}``: frames handed to a connection. A hub
  delivery (``broadcast``, ``send_to_user``) adds its recipient count at once.
  Server-chosen event names; at most :data:`MAX_LABEL_VALUES` distinct values, the
  rest count as ``other``.
- ``wsgen_errors_total{phase, code}``: hook failures (phase ``on_connect``,
  ``on_message``, ``on_close``, ``on_error``, ``middleware``; code ``exception``)
  and errors answered to clients (phase ``protocol``; code the error code, such as
  ``invalid_json``, ``unavailable``, ``internal_error``).
- ``wsgen_broadcast_fanout_seconds`` (histogram): time to hand one hub delivery to
  this process's connections of the topic (only deliveries with local connections).
- ``wsgen_limit_closes_total{reason}``: connections the server closed for a limit:
  ``flood`` (1008, kept flooding past the rate limit), ``too_big`` (1009),
  ``slow_consumer`` (1013, outgoing queue over ``SEND_QUEUE_MAX``) and
  ``ping_timeout`` (no pong to a protocol ping in time; the transport is aborted).
- ``wsgen_broker_errors_total{operation}``: broker operations that failed because
  the broker (Redis) could not be reached (``publish``, ``presence``, ``sessions``,
  ``heartbeat``); local delivery went on.
- ``wsgen_broker_connected`` (gauge): 1 while this process's broker subscriber is
  connected, 0 while it reconnects (always 1 with the in-process broker).
- ``wsgen_handshakes_refused_total{route, status}``: handshakes answered with an HTTP
  error; ``route`` is the handler's path template, ``unmatched`` for paths no
  handler serves (404).

Hot paths use label children bound once (per route and event at
``RouteEndpoint`` construction; per event on first use) and a plain ``inc()``. The two
counters bumped for every message (received, sent) are :class:`LoopCounter` families:
a plain integer per child, no lock, since only the event loop's thread counts them
(prometheus_client's ``Counter.inc`` takes a lock and checks its arguments: a tenth of
a ping's round trip).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, Metric

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)

UNKNOWN = "unknown"
INVALID = "invalid"
OTHER = "other"
DROPPED = "dropped"
LIMIT_REASONS = ("flood", "too_big", "slow_consumer", "ping_timeout")
UNMATCHED = "unmatched"
MAX_LABEL_VALUES = 256
"""Distinct values of a label fed by server code (sent events, error codes), then ``other``."""

FANOUT_BUCKETS = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)

CONNECTIONS_OPEN = Gauge(
    "wsgen_connections_open",
    "WebSocket connections open now, by route.",
    ["route"],
    registry=REGISTRY,
)


class Incrementable(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class LoopCount:
    """One child of a :class:`LoopCounter`."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class LoopCounter:
    """A labelled counter family counted from the event loop's thread only (no lock).

    Exposed like a ``prometheus_client.Counter`` of the same name: ``_total`` and
    ``_created`` samples per label set.
    """

    def __init__(
        self, name: str, documentation: str, labelnames: list[str], registry: CollectorRegistry
    ) -> None:
        self._name = name.removesuffix("_total")
        self._documentation = documentation
        self._labelnames = labelnames
        self._children: dict[tuple[str, ...], LoopCount] = {}
        registry.register(self)

    def labels(self, *values: str) -> LoopCount:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = LoopCount()
        return child

    def describe(self) -> list[Metric]:
        return [CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)]

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for values, child in list(self._children.items()):
            family.add_metric(list(values), child.value, created=child.created)
        yield family


MESSAGES_RECEIVED = LoopCounter(
    "wsgen_messages_received_total",
    "Client frames received, by route and event (unknown: not an event of the route; "
    "invalid: not a valid envelope).",
    ["route", "event"],
    registry=REGISTRY,
)
MESSAGES_SENT = LoopCounter(
    "wsgen_messages_sent_total",
    "Frames sent to connections, by event.",
    ["event"],
    registry=REGISTRY,
)
ERRORS = Counter(
    "wsgen_errors_total",
    "Hook failures (code exception) and errors answered to clients (phase protocol).",
    ["phase", "code"],
    registry=REGISTRY,
)
BROADCAST_FANOUT_SECONDS = Histogram(
    "wsgen_broadcast_fanout_seconds",
    "Seconds spent handing one hub delivery to this process's connections.",
    buckets=FANOUT_BUCKETS,
    registry=REGISTRY,
)
LIMIT_CLOSES = Counter(
    "wsgen_limit_closes_total",
    "Connections closed by the server for a limit (flood, too_big, slow_consumer, ping_timeout).",
    ["reason"],
    registry=REGISTRY,
)
HANDSHAKES_REFUSED = Counter(
    "wsgen_handshakes_refused_total",
    "WebSocket handshakes refused with an HTTP response, by route and status.",
    ["route", "status"],
    registry=REGISTRY,
)
BROKER_ERRORS = Counter(
    "wsgen_broker_errors_total",
    "Broker operations that failed because the broker could not be reached.",
    ["operation"],
    registry=REGISTRY,
)
BROKER_CONNECTED = Gauge(
    "wsgen_broker_connected",
    "1 while the broker subscriber of this process is connected, else 0.",
    registry=REGISTRY,
)
BROKER_CONNECTED.set(1)


class _BoundedChildren:
    """Label children of ``family`` by one label value, bound on first use, at most ``limit``."""

    __slots__ = ("_children", "_family", "_limit", "_other", "_prefix")

    def __init__(
        self, family: Counter | LoopCounter, *prefix: str, limit: int = MAX_LABEL_VALUES
    ) -> None:
        self._family = family
        self._prefix = prefix
        self._limit = limit
        self._children: dict[str, Incrementable] = {}
        self._other: Incrementable = family.labels(*prefix, OTHER)

    def __call__(self, value: str) -> Incrementable:
        child = self._children.get(value)
        if child is None:
            if len(self._children) >= self._limit:
                return self._other
            child = self._children[value] = self._family.labels(*self._prefix, value)
        return child


sent = _BoundedChildren(MESSAGES_SENT)
"""``sent(event)``: the ``wsgen_messages_sent_total`` child of a server-side event name."""

_protocol_errors = _BoundedChildren(ERRORS, "protocol")
_error_sent = sent("error")
_not_found = HANDSHAKES_REFUSED.labels(UNMATCHED, "404")


class RouteMetrics:
    """The children one route uses, bound once when its endpoint is built."""

    __slots__ = ("dropped", "invalid", "open", "received", "route", "unknown")

    def __init__(self, route: str, events: Iterable[str]) -> None:
        self.route = route
        self.open = CONNECTIONS_OPEN.labels(route)
        self.received = {event: MESSAGES_RECEIVED.labels(route, event) for event in events}
        self.unknown = MESSAGES_RECEIVED.labels(route, UNKNOWN)
        self.invalid = MESSAGES_RECEIVED.labels(route, INVALID)
        self.dropped = MESSAGES_RECEIVED.labels(route, DROPPED)

    def refused(self, status: int) -> None:
        HANDSHAKES_REFUSED.labels(self.route, str(status)).inc()


def hook_failed(phase: str) -> None:
    """Count a hook failure that ``RouteEndpoint._failed`` logs."""
    ERRORS.labels(phase, "exception").inc()


def protocol_error(code: str) -> None:
    """Count an ``error`` frame answered to a client (and the frame sent)."""
    _protocol_errors(code).inc()


def error_frame_sent() -> None:
    _error_sent.inc()


_limit_closes = {reason: LIMIT_CLOSES.labels(reason) for reason in LIMIT_REASONS}


def limit_closed(reason: str) -> None:
    """Count a connection closed for a limit; ``reason`` is one of :data:`LIMIT_REASONS`."""
    _limit_closes[reason].inc()


def not_found_handshake() -> None:
    """Count a WebSocket handshake to a path no handler serves, refused with 404."""
    _not_found.inc()


def render(accept: str | None) -> tuple[bytes, str]:
    """The exposition of :data:`REGISTRY` in the format ``accept`` asks for, and its type."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(REGISTRY), content_type
