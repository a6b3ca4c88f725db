"""Settings from ``WSGEN_*`` environment variables and an optional ``.env`` (SPEC §9, §10).

Validated once at start; each bad value is reported with its variable name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WSGEN_", env_file=".env", extra="ignore", frozen=True
    )

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)

    jwt_secret: str | None = None
    jwt_algorithm: Literal["HS256", "HS384", "HS512", "RS256", "ES256"] = "HS256"
    jwt_public_key: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    api_key: str | None = None
    secrets_file: Path = Path(".wsgen/secrets.json")

    database_url: str = "sqlite+aiosqlite:///wsgen.db"
    broker_url: str = "memory://"
    presence_ttl: float = Field(15.0, ge=1)
    allowed_origins: str = ""
    query_token: bool = False
    user_max_connections: int = Field(1, ge=1)
    send_queue_max: int = Field(1024, ge=1)
    # Messages per second per connection (0: no limit), with a burst of twice that by
    # default; a connection with FLOOD_DROPS dropped messages within FLOOD_WINDOW
    # seconds is closed with 1008 (core/limits.py).
    rate_limit: float = Field(20.0, ge=0)
    rate_limit_burst: int | None = Field(None, ge=1)
    flood_drops: int = Field(100, ge=1)
    flood_window: float = Field(10.0, gt=0)
    chat_text_max: int = Field(4000, ge=1)
    max_message_bytes: int = Field(65536, ge=256)
    ping_interval: float = Field(20.0, gt=0)
    ping_timeout: float = Field(20.0, gt=0)
    shutdown_timeout: float = Field(10.0, gt=0)

    log_format: Literal["json", "console"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


def origins(settings: Settings) -> frozenset[str]:
    """``WSGEN_ALLOWED_ORIGINS`` as a set; empty means any origin."""
    return frozenset(
        o.strip().rstrip("/") for o in settings.allowed_origins.split(",") if o.strip()
    )


def rate_burst(settings: Settings) -> int:
    """``WSGEN_RATE_LIMIT_BURST``, or twice ``WSGEN_RATE_LIMIT`` (SPEC §10), at least 1."""
    if settings.rate_limit_burst is not None:
        return settings.rate_limit_burst
    return max(1, round(2 * settings.rate_limit))


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning pydantic's report into one line per bad variable.

    Raises:
        ConfigError: naming each ``WSGEN_*`` variable that is wrong and why.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = [
            f"WSGEN_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None
