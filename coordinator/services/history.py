"""`dormouse history`: which tier serves a query, and its points as rows."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from coordinator.core.series import Point, SeriesQuery
from coordinator.settings import Retention
from coordinator.store import nodes as node_rows
from coordinator.store import series as series_rows
from shared.errors import DormouseError, NotFound
from shared.metrics import Kind, Metric
from shared.units import iso

AGGREGATES = ("avg", "min", "max")


def choose_tier(step_s: float, since: float, now: float, retention: Retention) -> str:
    """The coarsest tier whose buckets fit in the step, and which still holds `since`."""
    tier = "raw" if step_s < 60 else "minute" if step_s < 3600 else "hour"
    if tier == "raw" and now - since > retention.raw:
        tier = "minute"
    if tier == "minute" and now - since > retention.minute:
        tier = "hour"
    return tier


def value_of(point: Point, metric: Metric, agg: str) -> float | None:
    """Counters show their increase per step; gauges the chosen aggregate."""
    if metric.kind is Kind.COUNTER:
        return point.agg.delta
    return getattr(point.agg, agg)


def rows(points: Sequence[Point], metric: Metric, agg: str) -> list[dict[str, object]]:
    return [
        {"time": iso(p.ts), "ts": p.ts, "value": value_of(p, metric, agg), "count": p.agg.count}
        for p in points
    ]


class HistoryError(DormouseError):
    """A history query that cannot be answered; the message says why."""


class UnknownNode(HistoryError, NotFound):
    """A node the store has never heard from."""


def series(
    engine: sa.Engine, query: SeriesQuery, agg: str, retention: Retention, now: float
) -> tuple[str, list[dict[str, object]]]:
    """(the tier that served it, one row per step) for a known node."""
    with engine.connect() as conn:
        known = node_rows.known_nodes(conn)
        if query.node not in known:
            raise UnknownNode(f"unknown node {query.node!r}; nodes: {', '.join(known)}")
        tier = choose_tier(query.step_s, query.since, now, retention)
        points = series_rows.history(conn, query, tier)
    return tier, rows(points, query.metric, agg)
