"""Energy maths, pure: integrate a node's samples, and the time it spent asleep and busy.

Counters (RAPL package + DRAM, NVML total energy, summed per sample) are preferred: the
increase between two samples, where a drop is a reset (agent restart, driver reload) and
the value after it is the increase since. Where a sample has no counter, power x the time
since the previous sample. A gap longer than `max_gap_s` (the node asleep, the agent down)
counts as neither energy nor awake time.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

Interval = tuple[float, float]
J_PER_KWH = 3.6e6


@dataclass(frozen=True, slots=True)
class Reading:
    ts: float
    power_w: float | None = None
    counter_j: float | None = None  # the node's energy counters summed, if it has them


@dataclass(frozen=True, slots=True)
class Integrated:
    energy_j: float
    awake_s: float
    weighted: tuple[float, ...] = ()  # per rate: sum of joules x the rate when drawn


class RateAt(Protocol):
    def at(self, t: float) -> float: ...


def increase(previous: float, current: float) -> float:
    return current - previous if current >= previous else current


def integrate(
    readings: Sequence[Reading], max_gap_s: float, rates: Sequence[RateAt] = ()
) -> Integrated:
    """`readings` in time order. Each of `rates` (a tariff, a carbon intensity) weighs the
    energy between two samples by its value at their midpoint (samples are seconds apart,
    a tariff's steps are an hour or more)."""
    energy = awake = 0.0
    weighted = [0.0] * len(rates)
    for before, after in itertools.pairwise(readings):
        dt = after.ts - before.ts
        if dt <= 0 or dt > max_gap_s:
            continue
        awake += dt
        if before.counter_j is not None and after.counter_j is not None:
            step = increase(before.counter_j, after.counter_j)
        elif after.power_w is not None:
            step = after.power_w * dt
        else:
            continue
        energy += step
        for i, rate in enumerate(rates):
            weighted[i] += step * rate.at(before.ts + dt / 2)
    return Integrated(energy, awake, tuple(weighted))


def clip(intervals: Iterable[Interval], start: float, end: float) -> list[Interval]:
    """Intervals cut to [start, end], merged where they overlap, in order."""
    cut = sorted((max(a, start), min(b, end)) for a, b in intervals if b > start and a < end)
    merged: list[Interval] = []
    for a, b in cut:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        elif b > a:
            merged.append((a, b))
    return merged


def length(intervals: Iterable[Interval]) -> float:
    return sum(b - a for a, b in intervals)


def asleep_intervals(events: Iterable[tuple[float, str]], end: float) -> list[Interval]:
    """From a node's power events (ts, kind), oldest first: asleep from `asleep` until the
    next `resumed` or `failed` (a node that did not come back is not counted as asleep)."""
    intervals: list[Interval] = []
    since: float | None = None
    for ts, kind in events:
        if kind == "asleep" and since is None:
            since = ts
        elif kind in {"resumed", "failed"} and since is not None:
            intervals.append((since, ts))
            since = None
    if since is not None:
        intervals.append((since, end))
    return intervals


def idle_power_w(readings: Iterable[Reading], busy: Sequence[Interval]) -> float | None:
    """Mean power of the samples taken while no job ran: what the node burns doing nothing.
    `busy` as `clip` returns it (sorted, merged)."""
    starts = [a for a, _ in busy]
    idle = [
        r.power_w for r in readings if r.power_w is not None and not _inside(r.ts, starts, busy)
    ]
    return sum(idle) / len(idle) if idle else None


def _inside(ts: float, starts: list[float], intervals: Sequence[Interval]) -> bool:
    at = bisect.bisect_right(starts, ts) - 1
    return at >= 0 and ts <= intervals[at][1]


class EnergyMeter:
    """Fleet energy as it arrives, for the live `dormouse_energy_joules_total` counter:
    each node's power x the time since its previous sample (gaps over `max_gap_s` count
    nothing). The report recomputes from the store with counters; this is the live view."""

    def __init__(self, max_gap_s: float) -> None:
        self._max_gap_s = max_gap_s
        self._last: dict[str, float] = {}
        self.joules: dict[str, float] = {}

    def add(self, node: str, samples: Iterable[tuple[float, float | None]]) -> None:
        """`samples`: (ts, power_w) in time order; an older sample than the last is ignored."""
        last = self._last.get(node)
        total = self.joules.get(node, 0.0)
        for ts, power_w in samples:
            if last is not None and ts <= last:
                continue
            if last is not None and power_w is not None and ts - last <= self._max_gap_s:
                total += power_w * (ts - last)
            last = ts
        if last is not None:
            self._last[node], self.joules[node] = last, total
