"""A metric of one node over time (`dormouse history`), from the tier that serves it."""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa

from coordinator.core.rollups import Aggregate, bucket_start, merge
from coordinator.core.series import Point, SeriesQuery
from coordinator.store.models import gpu_samples, rollup_hour, rollup_minute, samples
from coordinator.store.rollups import HOUR, MINUTE, aggregate
from shared.metrics import Kind, Scope


def history(conn: sa.Connection, query: SeriesQuery, tier: str) -> list[Point]:
    """Points every `step_s` from the `tier` table ("raw", "minute" or "hour"); the newest
    minutes, not rolled up yet, come from the raw samples."""
    if tier == "raw":
        return _from_raw(conn, query, query.since)
    table = rollup_minute if tier == "minute" else rollup_hour
    width = MINUTE if tier == "minute" else HOUR
    select = (
        sa.select(
            table.c.bucket, table.c.count, table.c.avg, table.c.min, table.c.max, table.c.delta
        )
        .where(
            table.c.node == query.node,
            table.c.metric == query.metric.name,
            table.c.gpu_index == query.gpu_index,
            table.c.bucket >= query.since,
            table.c.bucket < query.until,
        )
        .order_by(table.c.bucket)
    )
    parts: dict[float, list[Aggregate]] = defaultdict(list)
    newest = query.since
    for bucket, *fields in conn.execute(select):
        parts[bucket_start(bucket, query.step_s)].append(Aggregate(*fields))
        newest = max(newest, bucket + width)
    points = [Point(ts, merge(aggs)) for ts, aggs in sorted(parts.items())]
    return _combine(points, _from_raw(conn, query, newest))


def _combine(points: list[Point], tail: list[Point]) -> list[Point]:
    merged: dict[float, list[Aggregate]] = defaultdict(list)
    for point in [*points, *tail]:
        merged[point.ts].append(point.agg)
    return [Point(ts, merge(aggs)) for ts, aggs in sorted(merged.items())]


def _from_raw(conn: sa.Connection, query: SeriesQuery, since: float) -> list[Point]:
    metric = query.metric
    table = samples if metric.scope is Scope.NODE else gpu_samples
    select = sa.select(table.c.ts, table.c[metric.name]).where(
        table.c.node == query.node, table.c.ts >= since, table.c.ts < query.until
    )
    if metric.scope is Scope.GPU:
        select = select.where(table.c.gpu_index == query.gpu_index)
    groups: dict[float, list[float]] = defaultdict(list)
    for ts, value in conn.execute(select.order_by(table.c.seq)):
        if value is not None:
            groups[bucket_start(ts, query.step_s)].append(value)
    previous = _value_before(conn, query, table, since) if metric.kind is Kind.COUNTER else None
    points = []
    for ts, values in sorted(groups.items()):
        points.append(Point(ts, aggregate(metric, previous, values)))
        previous = values[-1]
    return points


def _value_before(
    conn: sa.Connection, query: SeriesQuery, table: sa.Table, since: float
) -> float | None:
    """A counter's last value before the window, so its first increase is not lost."""
    column = table.c[query.metric.name]
    select = (
        sa.select(column)
        .where(table.c.node == query.node, table.c.ts < since, column.is_not(None))
        .order_by(table.c.seq.desc())
        .limit(1)
    )
    if query.metric.scope is Scope.GPU:
        select = select.where(table.c.gpu_index == query.gpu_index)
    return conn.execute(select).scalar()
