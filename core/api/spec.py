"""HTTP operations declared once: the route Starlette serves and its OpenAPI description.

Each API module lists :class:`Operation` objects; the app mounts their routes and
``GET /openapi.json`` describes them from the same pydantic models the endpoints
validate with, so the document cannot drift from the code.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Endpoint = Callable[[Request], Awaitable[Response]]
Security = Literal["serviceApiKey", "userToken"]
REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"{(\w+)}")


class ErrorBody(BaseModel):
    """Every error response: a stable code and a message for humans."""

    error: str
    message: str


@dataclass(slots=True, frozen=True)
class Reply:
    """One documented response: its description and body model (None: no body)."""

    description: str
    model: type[BaseModel] | None = None


@dataclass(slots=True, frozen=True)
class Operation:
    method: Literal["GET", "POST", "PUT", "DELETE"]
    path: str
    endpoint: Endpoint
    summary: str
    replies: Mapping[int, Reply]
    security: Security | None = None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    tags: tuple[str, ...] = field(default=())

    def route(self) -> Route:
        return Route(self.path, self.endpoint, methods=[self.method])


def routes(operations: Iterable[Operation]) -> list[Route]:
    return [operation.route() for operation in operations]


def openapi_document(operations: Iterable[Operation], title: str, version: str) -> dict[str, Any]:
    """An OpenAPI 3.1 document for ``operations``."""
    operations = list(operations)
    keys, components = _schemas(operations)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        item: dict[str, Any] = {
            "summary": op.summary,
            "operationId": op.endpoint.__name__,
            "tags": list(op.tags),
            "parameters": _parameters(op),
            "responses": {
                str(status): _response(reply, keys) for status, reply in sorted(op.replies.items())
            },
        }
        if op.endpoint.__doc__:
            item["description"] = op.endpoint.__doc__.strip()
        if op.security is not None:
            item["security"] = [{op.security: []}]
        if op.body is not None:
            item["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": keys[(op.body, "validation")]}},
            }
        paths.setdefault(op.path, {})[op.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "serviceApiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The platform services' key, WSGEN_API_KEY.",
                },
                "userToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "The user's own token; `sub` is the user id.",
                },
            },
        },
    }


def _schemas(operations: list[Operation]) -> tuple[dict[Any, dict[str, Any]], dict[str, Any]]:
    wanted: set[tuple[type[BaseModel], Literal["validation", "serialization"]]] = set()
    for op in operations:
        if op.body is not None:
            wanted.add((op.body, "validation"))
        for reply in op.replies.values():
            if reply.model is not None:
                wanted.add((reply.model, "serialization"))
    ordered = sorted(wanted, key=lambda pair: (pair[0].__name__, pair[1]))
    keys, document = models_json_schema(ordered, ref_template=REF)
    found: dict[Any, dict[str, Any]] = dict(keys)
    return found, document.get("$defs", {})


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(op.path)
    ]
    if op.query is not None:
        schema = op.query.model_json_schema()
        required = set(schema.get("required", ()))
        for name, prop in schema["properties"].items():
            params.append(
                {"name": name, "in": "query", "required": name in required, "schema": prop}
            )
    return params


def _response(reply: Reply, keys: Mapping[tuple[type[BaseModel], str], Any]) -> dict[str, Any]:
    response: dict[str, Any] = {"description": reply.description}
    if reply.model is not None:
        schema = keys[(reply.model, "serialization")]
        response["content"] = {"application/json": {"schema": schema}}
    return response


ERRORS = {
    401: Reply("Missing or invalid credentials.", ErrorBody),
    403: Reply("Not allowed.", ErrorBody),
    404: Reply("Not found.", ErrorBody),
    409: Reply("Conflict.", ErrorBody),
    422: Reply("The body or a parameter is invalid; the message names the field.", ErrorBody),
    503: Reply("The store or broker is unavailable; retry.", ErrorBody),
}


def errors(*statuses: int) -> dict[int, Reply]:
    """The documented error responses for these statuses."""
    return {status: ERRORS[status] for status in statuses}
