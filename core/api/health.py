"""Liveness, readiness and metrics endpoints (SPEC §7).

- ``GET /healthz``: the process serves HTTP (no dependency is checked).
- ``GET /readyz``: the store and the broker answer a ping, each within
  :data:`CHECK_TIMEOUT` seconds (checked concurrently, so the answer never takes
  much longer): 200 ``{"status": "ready", "checks": {"store": "ok", "broker": "ok"}}``,
  or 503 ``{"status": "unavailable", "checks": {...}}`` where each failed check reads
  ``"unavailable"`` (it raised) or ``"timeout"``. Failures are logged with the error
  class only: a driver's message may carry a database URL.
- ``GET /metrics``: :data:`core.metrics.REGISTRY` in the Prometheus text format
  (OpenMetrics when the scraper asks for it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core import metrics
from core.api.http import services_of
from core.api.spec import Operation, Reply
from core.logging import get_logger

log = get_logger("wsgen.health")

CHECK_TIMEOUT = 2.0
"""Seconds each readiness check may take before it counts as failed."""


async def healthz(_request: Request) -> Response:
    """The process is up and serving HTTP."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when the store and the broker both answer in time."""
    services = services_of(request)
    store, broker = await asyncio.gather(
        _check("store", lambda: services.store.ping()),
        _check("broker", lambda: services.hub.backend.broker.ping()),
    )
    checks = {"store": store, "broker": broker}
    if store == broker == "ok":
        return JSONResponse({"status": "ready", "checks": checks})
    return JSONResponse({"status": "unavailable", "checks": checks}, 503)


async def _check(name: str, probe: Callable[[], Awaitable[None]]) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await probe()
    except TimeoutError:
        log.warning("readiness check failed", check=name, error="timeout")
        return "timeout"
    except Exception as exc:
        log.warning("readiness check failed", check=name, error=type(exc).__name__)
        return "unavailable"
    return "ok"


async def metrics_endpoint(request: Request) -> Response:
    """The server's metrics for Prometheus."""
    body, content_type = metrics.render(request.headers.get("accept"))
    return Response(body, headers={"Content-Type": content_type})


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


operations = [
    Operation("GET", "/healthz", healthz, "Liveness", {200: Reply("Up.", Health)}, tags=("ops",)),
    Operation(
        "GET",
        "/readyz",
        readyz,
        "Readiness",
        {200: Reply("Ready.", Readiness), 503: Reply("A dependency is down.", Readiness)},
        tags=("ops",),
    ),
    Operation(
        "GET",
        "/metrics",
        metrics_endpoint,
        "Prometheus metrics",
        {200: Reply("Prometheus text format.")},
        tags=("ops",),
    ),
]
