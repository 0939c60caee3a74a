"""Energy maths, pure: integrate a node's samples, and the time it spent asleep and busy.

Counters (RAPL package + DRAM, NVML total energy, summed per sample) are preferred: the
increase between two samples, where a drop is a reset (agent restart, driver reload) and
the value after it is the increase since. Where a sample has no counter, power x the time
since the previous sample. A gap longer than `max_gap_s` (the node asleep, the agent down)
counts as neither energy nor awake time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

Interval = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Reading:
    ts: float
    power_w: float | None = None
    counter_j: float | None = None  # the node's energy counters summed, if it has them


@dataclass(frozen=True, slots=True)
class UsageBucket:
    """A node's energy over [start, end), as the rollups keep it: the steps between its
    samples that end in the bucket (the rules above), and its power samples' sum."""

    start: float
    end: float
    energy_j: float = 0.0
    awake_s: float = 0.0
    metered: bool = False  # some step was measured (a counter or a power reading)
    power_sum_w: float = 0.0
    power_n: int = 0


@dataclass(frozen=True, slots=True)
class Buckets:
    """A node's `UsageBucket`s column by column (oldest first): a week of a thousand nodes'
    hours is a few arrays, summed and priced with numpy, not 168,000 objects."""

    start: np.ndarray
    end: np.ndarray
    energy_j: np.ndarray
    awake_s: np.ndarray
    metered: np.ndarray  # bool
    power_sum_w: np.ndarray
    power_n: np.ndarray

    @classmethod
    def of(cls, buckets: Sequence[UsageBucket]) -> Buckets:
        columns = [[getattr(b, f) for b in buckets] for f in FIELDS]
        return cls(*(np.array(c, dtype=bool if f == "metered" else np.float64)
                     for f, c in zip(FIELDS, columns, strict=True)))  # fmt: skip

    def where(self, keep: np.ndarray | slice) -> Buckets:
        return Buckets(*(getattr(self, f)[keep] for f in FIELDS))

    def __len__(self) -> int:
        return len(self.start)


FIELDS = ("start", "end", "energy_j", "awake_s", "metered", "power_sum_w", "power_n")


def increase(previous: float, current: float) -> float:
    return current - previous if current >= previous else current


def bucketed(readings: Sequence[Reading], width_s: float, max_gap_s: float) -> list[UsageBucket]:
    """`readings` (time order) as buckets of `width_s`, each step between two readings in
    the bucket of the later one: the reference for the store's vectorised rollup
    (`core.aggregates.usage`), which a test holds to it."""
    found: dict[float, UsageBucket] = {}
    previous: Reading | None = None
    for reading in readings:
        start = reading.ts // width_s * width_s
        b = found.get(start) or UsageBucket(start, start + width_s)
        energy, awake, metered = b.energy_j, b.awake_s, b.metered
        dt = reading.ts - previous.ts if previous else 0.0
        if previous is not None and 0 < dt <= max_gap_s:
            awake += dt
            if previous.counter_j is not None and reading.counter_j is not None:
                energy += increase(previous.counter_j, reading.counter_j)
                metered = True
            elif reading.power_w is not None:
                energy += reading.power_w * dt
                metered = True
        has_power = reading.power_w is not None
        found[start] = UsageBucket(
            start,
            start + width_s,
            energy,
            awake,
            metered,
            b.power_sum_w + (reading.power_w if has_power else 0.0),  # type: ignore[operator]
            b.power_n + has_power,
        )
        previous = reading
    return [found[k] for k in sorted(found)]


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
