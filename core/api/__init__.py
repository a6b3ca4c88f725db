"""The HTTP API (SPEC §7, §10): JSON in and out, camelCase fields, described by OpenAPI."""

from __future__ import annotations

import functools
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.api import health, publish, rooms, user
from core.api.spec import Operation, Reply, openapi_document, routes


async def openapi(_request: Request) -> Response:
    """This API's OpenAPI 3.1 document, generated from the endpoints' pydantic models."""
    return JSONResponse(document())


OPERATIONS: list[Operation] = [
    *rooms.operations,
    *publish.operations,
    *user.operations,
    *health.operations,
    Operation(
        "GET",
        "/openapi.json",
        openapi,
        "OpenAPI document",
        {200: Reply("OpenAPI 3.1.")},
        tags=("ops",),
    ),
]


@functools.cache
def document() -> dict[str, Any]:
    return openapi_document(OPERATIONS, "wsgen", "0.1.0")


def api_routes() -> list[Route]:
    return routes(OPERATIONS)
