"""Rollup maths, pure: gauges to count/avg/min/max, counters to their increase.

Counters (RAPL and NVML energy) only grow, except when the agent restarts (RAPL totals start
again from zero) or the driver reloads (NVML): a drop is a reset, and the value after it is
the increase since the reset.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Aggregate:
    count: int
    avg: float | None = None
    min: float | None = None
    max: float | None = None
    delta: float | None = None  # counters only


def bucket_start(ts: float, width_s: float) -> float:
    return math.floor(ts / width_s) * width_s


def gauge(values: Sequence[float]) -> Aggregate:
    if not values:
        return Aggregate(count=0)
    return Aggregate(
        count=len(values), avg=sum(values) / len(values), min=min(values), max=max(values)
    )


def counter(previous: float | None, values: Sequence[float]) -> Aggregate:
    """The increase over `values` (in seq order), counting from `previous`, the last value
    before the bucket, when there is one."""
    increase = 0.0
    last = previous
    for value in values:
        if last is not None:
            increase += value - last if value >= last else value
        last = value
    return Aggregate(
        count=len(values),
        delta=increase if values else None,
        min=min(values, default=None),
        max=max(values, default=None),
    )


def merge(parts: Iterable[Aggregate]) -> Aggregate:
    """Minutes into an hour: averages weighted by count, extremes of extremes, deltas summed."""
    parts = [p for p in parts if p.count]
    if not parts:
        return Aggregate(count=0)
    count = sum(p.count for p in parts)
    avgs = [(p.avg, p.count) for p in parts if p.avg is not None]
    deltas = [p.delta for p in parts if p.delta is not None]
    return Aggregate(
        count=count,
        avg=sum(a * c for a, c in avgs) / sum(c for _, c in avgs) if avgs else None,
        min=min((p.min for p in parts if p.min is not None), default=None),
        max=max((p.max for p in parts if p.max is not None), default=None),
        delta=sum(deltas) if deltas else None,
    )
