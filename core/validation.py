"""Turning a pydantic validation failure into the one-line message clients see."""

from __future__ import annotations

from pydantic import ValidationError


def describe(exc: ValidationError) -> str:
    """The first problem, naming its field: ``text: String should have ...``.

    Input values are never included: they may be chat text or signaling data.
    """
    err = exc.errors(include_url=False, include_input=False, include_context=False)[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]
