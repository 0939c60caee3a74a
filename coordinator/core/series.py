"""A query of one metric of one node over time, and the points that answer it."""

from __future__ import annotations

from dataclasses import dataclass

from coordinator.core.rollups import Aggregate
from shared.metrics import Metric


@dataclass(frozen=True, slots=True)
class Point:
    ts: float
    agg: Aggregate


@dataclass(frozen=True, slots=True)
class SeriesQuery:
    node: str
    metric: Metric
    gpu_index: int  # -1 for node metrics
    since: float
    until: float
    step_s: float
