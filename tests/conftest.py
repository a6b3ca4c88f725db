"""Fixtures shared by the test suite: settings in a temp dir and captured JSON logs."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings isolated from the developer's environment: secrets in a temp file."""
    return Settings(
        secrets_file=tmp_path / "secrets.json",
        log_format="json",
        log_level="INFO",
        _env_file=None,  # type: ignore[call-arg]
    )


class LogCapture(logging.Handler):
    """Every log record of the test, rendered by wsgen's own JSON formatter and parsed back.

    It reads the formatter off the handler ``core.logging`` installs, at emit time,
    so it sees exactly what an operator's log pipeline would get.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        wsgen = next((h for h in logging.getLogger().handlers if h.get_name() == "wsgen"), None)
        if wsgen is None or wsgen.formatter is None:
            return
        self.lines.append(json.loads(wsgen.formatter.format(record)))

    def records(self, event: str | None = None, **fields: Any) -> list[dict[str, Any]]:
        return [
            r
            for r in self.lines
            if (event is None or r.get("event") == event)
            and all(r.get(k) == v for k, v in fields.items())
        ]


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    capture = LogCapture()
    root = logging.getLogger()
    root.addHandler(capture)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
