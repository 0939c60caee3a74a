"""Prices and carbon intensity over time, pure: CSV text in, a piecewise-constant rate out.

Two shapes of file, told apart by the header (`[cost] tariff`, `[cost] carbon`,
`dormouse simulate --tariff/--carbon`):

* a time-of-use table, `hour,price` (24 rows, hour 0-23) or `weekday,hour,price` (weekday
  0-6, Monday first; hours a weekday leaves out repeat its previous row): the table repeats
  every day or week, from a Monday 00:00 in local time (`Rate.on_epoch`); the simulator
  reads trace time as seconds from a Monday 00:00 (`Rate.on_trace`).
* a series, `time,price` (ISO-8601 start of each interval, in order): each value holds until
  the next; the first holds before it and the last after it. Times are epoch seconds (a time
  without a zone is UTC); the simulator lays the series on trace time from the Monday 00:00
  on or before its first row.

The carbon file is the same with `gco2_per_kwh` for `price`. `integral(t0, t1)` is exact
(the sum of value x seconds), so cost = W x integral / 3.6e6.
"""

from __future__ import annotations

import bisect
import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from shared.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

DAY_S, WEEK_S = 86_400.0, 604_800.0
EPOCH_TO_MONDAY_S = 3 * DAY_S  # 1970-01-01 was a Thursday
PRICE, CARBON = "price", "gco2_per_kwh"


@dataclass(frozen=True, slots=True)
class Rate:
    """A value per kWh over time. `starts` ascend; with `period_s` the table repeats and
    `starts[0]` is 0."""

    starts: tuple[float, ...]
    values: tuple[float, ...]
    period_s: float | None = None
    origin_s: float = 0.0  # the rate's own time is the caller's time + this
    cumulative: tuple[float, ...] = ()  # integral from starts[0] to each start

    def __post_init__(self) -> None:
        if not self.cumulative:
            total, cum = 0.0, [0.0]
            for i in range(1, len(self.starts)):
                total += self.values[i - 1] * (self.starts[i] - self.starts[i - 1])
                cum.append(total)
            object.__setattr__(self, "cumulative", tuple(cum))

    @classmethod
    def flat(cls, value: float) -> Rate:
        return cls((0.0,), (value,), DAY_S)

    @property
    def is_flat(self) -> bool:
        return len(set(self.values)) <= 1

    def at_each(self, times: np.ndarray) -> np.ndarray:
        """`at` of every time at once (numpy imported here: the config, which every command
        reads, holds a Rate, and most commands never evaluate one over an array)."""
        import numpy as np  # noqa: PLC0415

        t = times + self.origin_s
        x = t % self.period_s if self.period_s else t
        at = np.maximum(0, np.searchsorted(np.array(self.starts), x, side="right") - 1)
        return np.array(self.values, dtype=np.float64)[at]

    def mean_each(self, t0: np.ndarray, t1: np.ndarray) -> np.ndarray:
        """`mean` of many intervals at once (chargeback prices every job's run this way)."""
        import numpy as np  # noqa: PLC0415

        span = t1 - t0
        integral = self._antiderivative_each(t1) - self._antiderivative_each(t0)
        return np.where(span > 0, integral / np.where(span > 0, span, 1.0), self.at_each(t0))

    def _antiderivative_each(self, t: np.ndarray) -> np.ndarray:
        import numpy as np  # noqa: PLC0415

        starts, values = np.array(self.starts), np.array(self.values, dtype=np.float64)
        cumulative = np.array(self.cumulative, dtype=np.float64)

        def within(x: np.ndarray) -> np.ndarray:
            i = np.maximum(0, np.searchsorted(starts, x, side="right") - 1)
            return cumulative[i] + values[i] * (x - starts[i])

        t = t + self.origin_s
        if self.period_s:
            laps, x = np.divmod(t, self.period_s)
            return laps * self._within(self.period_s) + within(x)
        return within(t)

    def at(self, t: float) -> float:
        t += self.origin_s
        x = t % self.period_s if self.period_s else t
        return self.values[max(0, bisect.bisect_right(self.starts, x) - 1)]

    def integral(self, t0: float, t1: float) -> float:
        """value x seconds from t0 to t1."""
        return self._antiderivative(t1) - self._antiderivative(t0)

    def mean(self, t0: float, t1: float) -> float:
        return self.at(t0) if t1 <= t0 else self.integral(t0, t1) / (t1 - t0)

    def _antiderivative(self, t: float) -> float:
        t += self.origin_s
        if self.period_s:
            laps, x = divmod(t, self.period_s)
            return laps * self._within(self.period_s) + self._within(x)
        return self._within(t)

    def _within(self, x: float) -> float:
        i = max(0, bisect.bisect_right(self.starts, x) - 1)
        return self.cumulative[i] + self.values[i] * (x - self.starts[i])

    def changes(self, t0: float, t1: float) -> list[float]:
        """The caller's times in (t0, t1) where the value may change, in order."""
        o = self.origin_s
        t0, t1 = t0 + o, t1 + o
        if not self.period_s:
            lo, hi = bisect.bisect_right(self.starts, t0), bisect.bisect_left(self.starts, t1)
            return [s - o for s in self.starts[lo:hi]]
        wraps = self.values[-1] != self.values[0]  # else a new lap is no change
        starts = self.starts if wraps else self.starts[1:]
        out, base = [], math.floor(t0 / self.period_s) * self.period_s
        while base < t1:
            out += [base + s - o for s in starts if t0 < base + s < t1]
            base += self.period_s
        return out

    def on_epoch(self, utc_offset_s: float) -> Rate:
        """Read by the daemon's clock (epoch seconds): a table in local time (the host's
        UTC offset now; a DST change shifts it by an hour until the next restart), a
        series as it is."""
        if not self.period_s:
            return self
        return replace(self, origin_s=utc_offset_s + EPOCH_TO_MONDAY_S)

    def on_trace(self) -> Rate:
        """Read by trace time: a table as it is (0 is a Monday 00:00), a series from the
        Monday 00:00 UTC on or before its first row."""
        if self.period_s:
            return self
        return replace(self, origin_s=monday_before(self.starts[0]))


def monday_before(ts: float) -> float:
    """The Monday 00:00 UTC on or before `ts`: trace time 0 for a series or a history laid
    on trace time, so a weekly table lines up with its hours."""
    first = datetime.fromtimestamp(ts, UTC)
    monday = (first - timedelta(days=first.weekday())).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return monday.timestamp()


def parse_rate(lines: Iterable[str], name: str, column: str = PRICE) -> Rate:
    """A rate from CSV text; every problem is a ConfigError naming the file and line."""
    rows = csv.DictReader(lines)
    header = {h.strip() for h in rows.fieldnames or ()}
    if column not in header:
        raise ConfigError(f"{name}: expected a `{column}` column (header hour,{column})")
    if "time" in header:
        return _series(rows, name, column)
    if "hour" in header:
        return _table(rows, name, column, weekly="weekday" in header)
    raise ConfigError(f"{name}: expected an `hour` or a `time` column")


def _cells(rows: csv.DictReader[str], name: str) -> Iterable[tuple[int, dict[str, str]]]:
    for number, raw in enumerate(rows, start=2):
        yield number, {k.strip(): (v or "").strip() for k, v in raw.items() if k}


def _value(row: dict[str, str], column: str, where: str) -> float:
    try:
        value = float(row[column])
    except ValueError:
        raise ConfigError(f"{where}: {column} {row[column]!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where}: {column} must be a number >= 0")
    return value


def _table(rows: csv.DictReader[str], name: str, column: str, *, weekly: bool) -> Rate:
    slots: dict[float, float] = {}
    for number, row in _cells(rows, name):
        where = f"{name}:{number}"
        hour = _whole(row["hour"], 0, 23, "hour", where)
        day = _whole(row["weekday"], 0, 6, "weekday", where) if weekly else 0
        start = day * DAY_S + hour * 3600.0
        if start in slots:
            raise ConfigError(f"{where}: weekday {day} hour {hour} given twice")
        slots[start] = _value(row, column, where)
    if not weekly and len(slots) != 24:
        raise ConfigError(f"{name}: expected 24 rows (hour 0-23), got {len(slots)}")
    if 0.0 not in slots:
        raise ConfigError(f"{name}: the table must give weekday 0 (Monday) hour 0")
    starts = sorted(slots)
    return _merged(starts, [slots[s] for s in starts], WEEK_S if weekly else DAY_S)


def _merged(starts: list[float], values: list[float], period_s: float | None) -> Rate:
    """Rows that repeat the row before them are no change: drop them."""
    kept = [i for i in range(len(starts)) if i == 0 or values[i] != values[i - 1]]
    return Rate(tuple(starts[i] for i in kept), tuple(values[i] for i in kept), period_s)


def _whole(text: str, low: int, high: int, what: str, where: str) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise ConfigError(f"{where}: {what} must be a whole number {low}-{high}, got {text!r}")
    return int(text)


def _series(rows: csv.DictReader[str], name: str, column: str) -> Rate:
    starts: list[float] = []
    values: list[float] = []
    for number, row in _cells(rows, name):
        where = f"{name}:{number}"
        try:
            when = datetime.fromisoformat(row["time"])
        except ValueError:
            raise ConfigError(f"{where}: time {row['time']!r} is not ISO-8601") from None
        t = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
        if starts and t <= starts[-1]:
            raise ConfigError(f"{where}: times must ascend")
        starts.append(t)
        values.append(_value(row, column, where))
    if not starts:
        raise ConfigError(f"{name}: no rows")
    return _merged(starts, values, None)
