"""The app factory: mounts every registered handler on Starlette with its lifecycle."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from core import metrics
from core.api import api_routes
from core.api.http import EXCEPTION_HANDLERS
from core.brokers import Backend, backend_from_url
from core.dev_secrets import resolve_secrets
from core.endpoint import RouteEndpoint, deny
from core.errors import ConfigError, Reject
from core.hub import Hub
from core.logging import configure_logging, get_logger
from core.services import Services
from core.settings import Settings, load_settings
from core.tokens import TokenCodec
from core.ws import WebSocketHandler

if TYPE_CHECKING:
    from core.store import Store

log = get_logger("wsgen.app")


def create_app(
    handlers: Sequence[WebSocketHandler],
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    backend: Backend | None = None,
) -> Starlette:
    """A Starlette app serving ``handlers`` and the HTTP API.

    The store (from ``WSGEN_DATABASE_URL``) is opened and the broker started when
    the app starts. ``store`` and ``backend`` can be injected, e.g. so that tests
    run two apps on one in-process bus as if they were two processes.

    Raises:
        ConfigError: for bad settings or two handlers on the same path.
    """
    settings = settings or load_settings()
    configure_logging(settings.log_format, settings.log_level)
    services = build_services(
        settings,
        backend or backend_from_url(settings.broker_url, presence_ttl=settings.presence_ttl),
    )
    ordered = _ordered(handlers)
    socket_routes = [
        WebSocketRoute(h.route.starlette_path, RouteEndpoint(h, services)) for h in ordered
    ]
    routes: list[BaseRoute] = [*socket_routes, *api_routes()]

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        from core.store import open_store

        own_store = store is None
        services._store = store or await open_store(settings.database_url)
        await services.hub.start()
        tune_gc()
        log.info("wsgen started", routes=[h.path for h in ordered], node=services.hub.node_id)
        try:
            yield
        finally:
            await services.hub.stop()
            if own_store:
                await services.store.close()
            log.info("wsgen stopped")

    handlers_: Any = EXCEPTION_HANDLERS
    app = WsgenApp(socket_routes, routes=routes, lifespan=lifespan, exception_handlers=handlers_)
    app.state.services = services
    app.router.default = not_found
    return app


class WsgenApp(Starlette):
    """Starlette, with WebSocket connections routed straight to their endpoint.

    A WebSocket connection lives for hours inside the coroutine that handles it; going
    through Starlette's error and exception middleware and its router would keep their
    frames alive for each connection and run them on every handshake, for nothing:
    a route's endpoint handles its own failures. HTTP requests take the usual path.
    Matching is Starlette's own (``WebSocketRoute.matches``), in the same order.
    """

    def __init__(self, socket_routes: list[WebSocketRoute], **options: Any) -> None:
        super().__init__(**options)
        self.socket_routes = socket_routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope["app"] = self
            for route in self.socket_routes:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child_scope)
                    await route.app(scope, receive, send)
                    return
            await not_found(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


GC_THRESHOLD = (50_000, 20, 100)


def tune_gc() -> None:
    """Collect cycles less often, and never re-scan what exists once the server is up.

    With thousands of connections alive, CPython's default thresholds (700, 10, 10)
    run full collections over every connection's objects again and again. In the
    benchmark, these settings and ``gc.freeze()`` cut the server's CPU per
    handshake by about a quarter. Reference counting still frees almost everything
    at once; only cycles wait longer.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def _ordered(handlers: Sequence[WebSocketHandler]) -> list[WebSocketHandler]:
    """Most specific paths first; two handlers on one path shape are refused."""
    ordered = sorted(handlers, key=lambda h: (h.route.specificity, h.route.shape, h.path))
    shapes: dict[object, str] = {}
    for handler in ordered:
        if handler.route.shape in shapes:
            raise ConfigError(
                f"{handler.path!r} collides with {shapes[handler.route.shape]!r}; "
                "run `wsgen generate` to see where"
            )
        shapes[handler.route.shape] = handler.path
    return ordered


def build_services(settings: Settings, backend: Backend) -> Services:
    secrets = resolve_secrets(settings)
    if secrets.created_file is not None:
        log.warning(
            "development secrets created; set WSGEN_JWT_SECRET and WSGEN_API_KEY in production",
            file=str(secrets.created_file),
        )
    return Services(
        settings=settings,
        tokens=TokenCodec.from_settings(settings, secrets.jwt_secret),
        hub=Hub(backend),
        api_key=secrets.api_key,
    )


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    """404 for an unknown path: an HTTP response for both plain requests and handshakes."""
    if scope["type"] == "websocket":
        rejection = Reject(404, "not_found", f"no WebSocket route at {scope['path']}")
        await deny(WebSocket(scope, receive, send), rejection)
        metrics.not_found_handshake()
        return
    if scope["type"] == "http":
        response = JSONResponse({"error": "not_found", "message": "no such path"}, 404)
        await response(scope, receive, send)
