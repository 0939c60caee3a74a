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


@dataclass(frozen=True, slots=True)
class FleetQuery:
    """A metric over many nodes, grouped: `agg` combines the members of a group (nodes, or
    every GPU of them for a GPU metric, or only GPU `gpu`) at each step."""

    metric: Metric
    since: float
    until: float
    step_s: float
    agg: str
    gpu: int | None = None

    @property
    def origin(self) -> float:
        """Where step 0 starts: steps line up on multiples of the step (whole hours)."""
        return self.since - self.since % self.step_s
