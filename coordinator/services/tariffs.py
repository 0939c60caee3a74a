"""Reading `[cost] tariff` and `[cost] carbon` files: the edge of the pure `power.tariff`."""

from __future__ import annotations

import time
from pathlib import Path

from coordinator.placement.model import Job
from coordinator.power.defer import Hold, Holds, plan_start
from coordinator.power.tariff import CARBON, PRICE, Rate, parse_rate
from coordinator.settings import Cost
from shared.config import NO_FILE
from shared.errors import ConfigError


def read_rate(path: Path, column: str, what: str) -> Rate | None:
    """The rate in `path` (None for an unset path); a one-line ConfigError otherwise."""
    if path == NO_FILE:
        return None
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"{what} {path}: {reason}") from None
    return parse_rate(text.splitlines(), str(path), column)


def prices(cost: Cost, path: Path | None = None) -> Rate:
    """The tariff (`path` over `[cost] tariff`), else the flat `price_kwh`."""
    rate = read_rate(path or cost.tariff, PRICE, "tariff")
    return rate if rate is not None else Rate.flat(cost.price_kwh)


def carbon(cost: Cost, path: Path | None = None) -> Rate | None:
    return read_rate(path or cost.carbon, CARBON, "carbon")


def on_local_clock(rate: Rate | None, now: float | None = None) -> Rate | None:
    """`rate` read by epoch seconds, a table in this host's local time (its UTC offset at
    `now`, else at the moment)."""
    offset = time.localtime(now).tm_gmtoff
    return None if rate is None else rate.on_epoch(offset)


def defer_rate(cost: Cost, now: float | None = None) -> Rate | None:
    """What holds compare: the carbon series with `defer_by = "carbon"`, else the prices."""
    return on_local_clock(carbon(cost) if cost.defer_by == "carbon" else prices(cost), now)


def holds(cost: Cost) -> Holds:
    """The daemon's holds for a cheaper (cleaner) window."""
    return Holds(defer_rate(cost), cost.defer_policy())


def predicted_hold(cost: Cost, job: Job, now: float, margin_s: float) -> Hold | None:
    """What `dormouse submit` says of a hold: the coordinator's own rule on this host's
    clock, less its booking of the fleet (which may move the start later)."""
    return plan_start(job, defer_rate(cost, now), now, margin_s, cost.defer_policy())
