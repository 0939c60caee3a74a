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
    parse_node,
    parse_path,
    parse_positive_seconds,
    parse_str,
    section,
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


def parse_count(value: Any) -> int:
    number = int(value) if isinstance(value, str) and value.strip().isdigit() else value
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ValueError(f"expected a whole number >= 1, got {value!r}")
    return number


@dataclass(frozen=True, slots=True, kw_only=True)
class Retention:
    raw: float = setting(7 * 86400.0, parse_positive_seconds, "keep raw samples this long")
    minute: float = setting(90 * 86400.0, parse_positive_seconds, "keep minute rollups")
    hour: float = setting(730 * 86400.0, parse_positive_seconds, "keep hour rollups")
    delete_batch: int = setting(5000, parse_count, "rows deleted per statement")


def parse_factor(value: Any) -> float:
    number = float(value) if isinstance(value, str) else value
    if isinstance(number, bool) or not isinstance(number, int | float) or not 0 <= number < 1e6:
        raise ValueError(f"expected a number >= 0, got {value!r}")
    return float(number)


@dataclass(frozen=True, slots=True, kw_only=True)
class Jobs:
    schedule_interval: float = setting(1.0, parse_positive_seconds, "time between placement passes")
    runtime_limit_factor: float = setting(
        2.0, parse_factor, "kill a job past runtime estimate x this (0: never)"
    )
    lost_after: float = setting(
        300.0, parse_positive_seconds, "a job whose node is offline this long is lost"
    )
    dispatch_retry: float = setting(
        30.0, parse_positive_seconds, "send a placed job again if it has not started by then"
    )
    cancel_grace: float = setting(
        10.0, parse_positive_seconds, "SIGTERM, then SIGKILL this long after, on cancel"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CoordinatorConfig:
    broker: BrokerUrl = setting(
        parse_broker_url("mqtt://127.0.0.1:1883"), parse_broker_url, "MQTT broker URL"
    )
    client_id: str = setting(
        "dormouse-coordinator", parse_node, "MQTT client id (a persistent session)"
    )
    db: str = setting("", parse_db_url, "SQLAlchemy URL; empty: SQLite file in data_dir")
    data_dir: Path = setting(
        default_data_dir("dormouse"), parse_path, "state directory (SQLite file, logs)"
    )
    command_key_file: Path = setting(
        Path("/etc/dormouse/command.key"), parse_path, "HMAC key for signing commands"
    )
    offline_after: float = setting(
        30.0, parse_positive_seconds, "a node silent this long is offline"
    )
    flush_interval: float = setting(
        0.25, parse_positive_seconds, "longest a received sample waits to be written"
    )
    flush_samples: int = setting(2000, parse_count, "write as soon as this many are waiting")
    max_buffered_samples: int = setting(
        200_000, parse_count, "samples held while the database is down; then stop taking"
    )
    resend_retry: float = setting(30.0, parse_positive_seconds, "ask again for a gap after")
    rollup_interval: float = setting(60.0, parse_positive_seconds, "how often rollups run")
    rollup_grace: float = setting(
        120.0, parse_positive_seconds, "roll a minute up this long after it ends"
    )
    retention: Retention = section(Retention, "how long each tier is kept")
    jobs: Jobs = section(Jobs, "placement and job lifecycle")
    log_level: str = setting("INFO", parse_log_level, "debug, info, warning or error")

    @property
    def db_url(self) -> str:
        return self.db or f"sqlite:///{self.data_dir / 'dormouse.db'}"
