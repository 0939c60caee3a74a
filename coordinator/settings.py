"""The coordinator's configuration schema (see shared.config for how it is loaded)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from shared.config import (
    BrokerUrl,
    default_data_dir,
    parse_broker_url,
    parse_log_level,
    parse_path,
    parse_str,
    setting,
)

DEFAULT_CONFIG_PATH = Path("/etc/dormouse/coordinator.toml")


def parse_db_url(value: Any) -> str:
    """A SQLAlchemy URL (sqlite:///path, postgresql+psycopg://user@host/db); empty: default."""
    text = parse_str(value).strip()
    if not text:
        return text
    try:
        make_url(text)
    except ArgumentError:
        raise ValueError(f"not a database URL: {text!r} (e.g. sqlite:///dormouse.db)") from None
    return text


@dataclass(frozen=True, slots=True, kw_only=True)
class CoordinatorConfig:
    broker: BrokerUrl = setting(
        parse_broker_url("mqtt://127.0.0.1:1883"), parse_broker_url, "MQTT broker URL"
    )
    db: str = setting("", parse_db_url, "SQLAlchemy URL; empty: SQLite file in data_dir")
    data_dir: Path = setting(
        default_data_dir("dormouse"), parse_path, "state directory (SQLite file, logs)"
    )
    command_key_file: Path = setting(
        Path("/etc/dormouse/command.key"), parse_path, "HMAC key for signing commands"
    )
    log_level: str = setting("INFO", parse_log_level, "debug, info, warning or error")

    @property
    def db_url(self) -> str:
        return self.db or f"sqlite:///{self.data_dir / 'dormouse.db'}"
