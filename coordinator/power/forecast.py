"""A forecast of GPU demand by hour of the week, for sizing the awake spare pool, pure.

`[power] spare = "forecast"`: instead of a fixed `spare_gpus`, keep awake the free GPUs that
new jobs are expected to ask for while a sleeping node would be waking: the GPUs submitted
per second at this hour of the week (the forecast) times the learned p95 wake time, never
fewer than `spare_gpus` and never more than `spare_max_gpus`.

Why this forecaster: GPU clusters' demand follows the working week (the ITP traces and the
operators' own dashboards show day/night and weekday/weekend cycles), and a site's fleet
and users change over weeks. One number per hour of the week, smoothed exponentially week
over week (`alpha`: the weight of the newest week), follows both with no training and
constant memory (168 numbers); hours never seen yet fall back to the mean of those seen.
Hours are counted from time 0 (trace time starts on a Monday; for the daemon, the Unix
epoch, a Thursday at 00:00 UTC): the labelling of the 168 slots does not matter, only that
a slot comes back every week.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

HOUR_S = 3600.0
HOURS_PER_WEEK = 168


@dataclass
class DemandForecast:
    """GPUs submitted per hour, per hour of the week. `observe` every submission in time
    order; `gpus_per_hour(ts)` is the forecast for the hour holding `ts`."""

    alpha: float = 0.5
    profile: list[float | None] = field(default_factory=lambda: [None] * HOURS_PER_WEEK)
    _hour: int | None = None  # the hour being counted (hours since time 0)
    _count: float = 0.0

    def observe(self, ts: float, gpus: float) -> None:
        self.advance(ts)
        self._count += gpus

    def advance(self, ts: float) -> None:
        """Close every hour before the one holding `ts` (a week of silence at most: older
        hours would only be zeros smoothed into zeros)."""
        hour = int(ts // HOUR_S)
        if self._hour is None:
            self._hour = hour
            return
        closing = min(hour - self._hour, HOURS_PER_WEEK)
        for _ in range(max(0, closing)):
            self._close(self._hour)
            self._hour += 1
        self._hour = max(self._hour, hour)

    def _close(self, hour: int) -> None:
        slot = hour % HOURS_PER_WEEK
        before = self.profile[slot]
        count, self._count = self._count, 0.0
        self.profile[slot] = (
            count if before is None else self.alpha * count + (1 - self.alpha) * before
        )

    def gpus_per_hour(self, ts: float) -> float:
        """The forecast for the hour of the week holding `ts` (0 before anything is seen)."""
        value = self.profile[int(ts // HOUR_S) % HOURS_PER_WEEK]
        if value is not None:
            return value
        seen = [v for v in self.profile if v is not None]
        return sum(seen) / len(seen) if seen else 0.0

    def expected(self, start: float, seconds: float) -> float:
        """GPUs expected to be asked for from `start` for `seconds` (hour by hour)."""
        total, at, end = 0.0, start, start + max(0.0, seconds)
        while at < end:
            hour_end = min(end, (math.floor(at / HOUR_S) + 1) * HOUR_S)
            total += self.gpus_per_hour(at) * (hour_end - at) / HOUR_S
            at = hour_end
        return total

    @staticmethod
    def next_change(ts: float, wake_s: float) -> float:
        """The next time after `ts` the pool's window (`ts` to `ts + wake_s`) starts in
        another hour, or reaches a second into the next (so that hour counts), when its
        target may move (a simulator ticks then; the daemon passes every second anyway)."""
        start = (math.floor(ts / HOUR_S) + 1) * HOUR_S
        end = (math.floor((ts + wake_s) / HOUR_S) + 1) * HOUR_S - wake_s + 1.0
        return min(start, end if end > ts else end + HOUR_S)

    def spare_gpus(self, ts: float, wake_s: float, *, least: int, most: int) -> int:
        """Free GPUs to keep awake at `ts`: what is expected to be asked for while a node
        wakes (from now to now + `wake_s`), within [least, most]."""
        return max(least, min(most, math.ceil(self.expected(ts, wake_s) - 1e-9)))
