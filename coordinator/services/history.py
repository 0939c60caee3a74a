"""`dormouse history`: which tier serves a query, and its points as rows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa

from coordinator.core import fleet
from coordinator.core.series import FleetQuery, Point, SeriesQuery
from coordinator.settings import Retention
from coordinator.store import nodes as node_rows
from coordinator.store import series as series_rows
from shared.errors import DormouseError, NotFound
from shared.metrics import Kind, Metric
from shared.units import iso

AGGREGATES = ("avg", "min", "max")  # of one node's steps
FLEET_AGGREGATES = fleet.AGGS  # of a group's members at each step


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


class NoNodes(HistoryError, NotFound):
    """A fleet query whose filters match no node."""


def grouped(  # noqa: PLR0917 - the query's parts
    engine: sa.Engine,
    query: FleetQuery,
    by: str,
    pattern: str | None,
    wanted: dict[str, str],
    retention: Retention,
    now: float,
) -> dict[str, object]:
    """`dormouse history --by`: one series per group, from the minute or hour tier (the
    `--by` JSON: metric, unit, step_s, tier, series of {group, points})."""
    try:
        fleet.parse_by(by)
    except ValueError as exc:
        raise HistoryError(str(exc)) from None
    tier = choose_tier(query.step_s, query.since, now, retention)
    if tier == "raw":
        raise HistoryError("--by reads the rollups: use a --step of 1m or more")
    with engine.connect() as conn:
        grouping = fleet.group(node_rows.node_labels(conn), pattern, wanted, by)
        if not grouping.group_of:
            raise NoNodes("no node matches --nodes/--label")
        parts = series_rows.fleet(conn, query, tier, grouping.group_of)
    counter = query.metric.kind is Kind.COUNTER
    values = [fleet.member_values(e, query.agg, counter, unique) for e, unique in parts]
    points = fleet.reduce_groups(*_joined(values), query.agg)
    found: list[list[list[float]]] = [[] for _ in grouping.groups]
    for g, step, value in zip(points.group, points.step, points.value, strict=True):
        found[g].append([query.origin + int(step) * query.step_s, float(value)])
    series = [{"group": g, "points": p} for g, p in zip(grouping.groups, found, strict=True)]
    return {
        "metric": query.metric.name,
        "unit": query.metric.unit,
        "step_s": query.step_s,
        "tier": tier,
        "series": series,
    }


def _joined(values: list[fleet.Values]) -> fleet.Values:
    """The parts' (group, step, value) as one, copied only when there are several: a
    week of a thousand 8-GPU nodes is 1.3 M entries."""
    if len(values) == 1:
        return values[0]
    if not values:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    group, step, value = (np.concatenate([v[i] for v in values]) for i in range(3))
    return group, step, value
