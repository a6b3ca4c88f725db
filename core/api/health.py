"""Liveness, readiness and metrics endpoints (SPEC §7)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def healthz(_request: Request) -> Response:
    """The process is up and serving HTTP."""
    return JSONResponse({"status": "ok"})


routes = [Route("/healthz", healthz, methods=["GET"])]
