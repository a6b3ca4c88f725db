"""Structured logging: JSON lines (default) or console, for wsgen and uvicorn alike.

structlog renders the event dicts; the standard library's handlers carry them, so
uvicorn's own records come out in the same format. Care-platform rule (SPEC §9):
log event names, sizes and ids, never tokens, chat text, notification bodies or
signaling data.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
from pydantic import ValidationError

_HANDLER_NAME = "wsgen"

_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(fmt: str = "json", level: str = "INFO", stream: TextIO | None = None) -> None:
    """Route every log record of the process through one formatter (idempotent).

    Tracebacks are plain in both formats: a rich traceback would print local
    variables, and those can hold tokens or message text.
    """
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _scrub_validation_errors,
            structlog.processors.format_exc_info if fmt == "json" else _identity,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    handler.addFilter(_strip_query_strings)

    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True

    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def _strip_query_strings(record: logging.LogRecord) -> bool:
    """Drop query strings from the paths uvicorn logs: they can carry ``?token=``."""
    if record.name.startswith("uvicorn") and isinstance(record.args, tuple):
        record.args = tuple(
            arg.partition("?")[0] if isinstance(arg, str) and arg.startswith("/") else arg
            for arg in record.args
        )
    return True


class ScrubbedValidationError(Exception):
    """Stands in a log for a pydantic ValidationError, whose message quotes the input."""


def _scrub_validation_errors(_logger: Any, _name: str, event_dict: Any) -> Any:
    """Log a ValidationError by its fields and problems only (SPEC §9).

    Its own message includes ``input_value=...``: chat text or signaling data when a
    handler validates client data itself and lets the error escape.
    """
    exc = event_dict.get("exc_info")
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False, include_context=False)
        )
        scrubbed = ScrubbedValidationError(f"{exc.title}: {problems}")
        event_dict["exc_info"] = scrubbed.with_traceback(exc.__traceback__)
    return event_dict


def _identity(_logger: Any, _name: str, event_dict: Any) -> Any:
    return event_dict


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
