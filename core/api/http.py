"""What every HTTP endpoint shares: errors as JSON, body validation, the API key."""

from __future__ import annotations

import hmac
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from core.errors import InvalidRecord, RoomExists, RoomNotFound, StoreUnavailable
from core.services import Services
from core.tokens import InvalidToken, bearer_from_header
from core.validation import describe

Model = TypeVar("Model", bound=BaseModel)


class HTTPError(Exception):
    """Answered as ``{"error": code, "message": message}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status)


async def http_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPError)
    return error_response(exc.status, exc.code, exc.message)


async def store_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    """The store's refusals as HTTP statuses, for every endpoint."""
    if isinstance(exc, RoomNotFound):
        return error_response(404, "not_found", str(exc))
    if isinstance(exc, RoomExists):
        return error_response(409, "conflict", str(exc))
    if isinstance(exc, InvalidRecord):
        return error_response(422, "invalid_body", str(exc))
    return error_response(503, "unavailable", "the store is unavailable; retry")


EXCEPTION_HANDLERS = {
    HTTPError: http_error_handler,
    RoomNotFound: store_error_handler,
    RoomExists: store_error_handler,
    StoreUnavailable: store_error_handler,
    InvalidRecord: store_error_handler,
}


def services_of(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


async def parse_body(request: Request, model: type[Model]) -> Model:
    """The request's JSON body validated against ``model``; 422 naming the field otherwise."""
    body = await request.body()
    try:
        return model.model_validate_json(body or b"null")
    except ValidationError as exc:
        raise HTTPError(422, "invalid_body", describe(exc)) from None


def parse_path(request: Request, model: type[Model]) -> Model:
    """The path parameters validated against ``model``; 422 naming the parameter otherwise."""
    try:
        return model.model_validate(request.path_params)
    except ValidationError as exc:
        raise HTTPError(422, "invalid_path", describe(exc)) from None


def parse_query(request: Request, model: type[Model]) -> Model:
    """The query string validated against ``model``; 422 naming the parameter otherwise."""
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise HTTPError(422, "invalid_query", describe(exc)) from None


def require_user(request: Request) -> tuple[Services, str]:
    """The services and the user id of ``Authorization: Bearer <user token>``; 401 otherwise."""
    services = services_of(request)
    try:
        claims = services.tokens.verify(
            bearer_from_header(request.headers.get("authorization", ""))
        )
    except InvalidToken as exc:
        raise HTTPError(401, "unauthorized", str(exc)) from None
    return services, claims.user_id


def require_api_key(request: Request) -> Services:
    """401 unless ``Authorization: Bearer <WSGEN_API_KEY>`` (compared in constant time)."""
    services = services_of(request)
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    expected = services.api_key.encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(key.strip().encode(), expected):
        raise HTTPError(401, "unauthorized", "a valid service API key is required")
    return services
