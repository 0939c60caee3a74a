"""Per-minute and per-hour rollups of the raw samples, and retention per tier."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa

from coordinator.core.rollups import Aggregate, bucket_start, counter, gauge, merge
from coordinator.store.models import gpu_samples, rollup_dirty, rollup_hour, rollup_minute, samples
from shared.metrics import BY_NAME, Kind, Metric, Scope, metrics_in

MINUTE, HOUR = 60.0, 3600.0
NODE_METRICS = [m for m in metrics_in(Scope.NODE) if not m.vector]
GPU_METRICS = list(metrics_in(Scope.GPU))


def roll_up(conn: sa.Connection, before: float, limit: int = 5000) -> int:
    """Recompute the minute rollups of every dirty (node, minute) that ended before
    `before`, then the hours they fall in. Returns the number of minutes done."""
    dirty = conn.execute(
        sa.select(rollup_dirty.c.node, rollup_dirty.c.bucket)
        .where(rollup_dirty.c.bucket + MINUTE <= before)
        .order_by(rollup_dirty.c.bucket)
        .limit(limit)
    ).all()
    by_bucket: dict[float, list[str]] = defaultdict(list)
    for node, bucket in dirty:
        by_bucket[bucket].append(node)
    hours: dict[float, set[str]] = defaultdict(set)
    for bucket, nodes in by_bucket.items():
        _replace(conn, rollup_minute, bucket, nodes, minute_rows(conn, bucket, nodes))
        hours[bucket_start(bucket, HOUR)].update(nodes)
    for hour, in_hour in hours.items():
        names = sorted(in_hour)
        _replace(conn, rollup_hour, hour, names, hour_rows(conn, hour, names))
    if dirty:
        conn.execute(
            sa.delete(rollup_dirty).where(
                sa.tuple_(rollup_dirty.c.node, rollup_dirty.c.bucket).in_(dirty)
            )
        )
    return len(dirty)


def _replace(
    conn: sa.Connection,
    table: sa.Table,
    bucket: float,
    nodes: list[str],
    rows: list[dict[str, Any]],
) -> None:
    conn.execute(sa.delete(table).where(table.c.bucket == bucket, table.c.node.in_(nodes)))
    if rows:
        conn.execute(sa.insert(table), rows)


def _row(node: str, gpu: int, metric: Metric, bucket: float, agg: Aggregate) -> dict[str, Any]:
    return {
        "node": node,
        "gpu_index": gpu,
        "metric": metric.name,
        "bucket": bucket,
        "count": agg.count,
        "avg": agg.avg,
        "min": agg.min,
        "max": agg.max,
        "delta": agg.delta,
    }


def aggregate(metric: Metric, previous: float | None, values: list[float]) -> Aggregate:
    return counter(previous, values) if metric.kind is Kind.COUNTER else gauge(values)


def minute_rows(conn: sa.Connection, bucket: float, nodes: list[str]) -> list[dict[str, Any]]:
    """Aggregates of one minute for some nodes; counters start from the last value in the
    minute before (a sample older than that is not looked for)."""
    rows = []
    for table, metrics, key in (
        (samples, NODE_METRICS, None),
        (gpu_samples, GPU_METRICS, gpu_samples.c.gpu_index),
    ):
        series: dict[tuple[str, int], list[Any]] = defaultdict(list)
        columns = [
            table.c.node,
            key if key is not None else sa.literal(-1),
            table.c.ts,
            *(table.c[m.name] for m in metrics),
        ]
        query = (
            sa.select(*columns)
            .where(
                table.c.node.in_(nodes), table.c.ts >= bucket - MINUTE, table.c.ts < bucket + MINUTE
            )
            .order_by(table.c.node, table.c.seq)
        )
        for node, gpu, ts, *values in conn.execute(query):
            series[(node, gpu)].append((ts, values))
        for (node, gpu), points in series.items():
            before = [v for ts, v in points if ts < bucket]
            inside = [v for ts, v in points if ts < bucket + MINUTE and ts >= bucket]
            for i, metric in enumerate(metrics):
                values = [v[i] for v in inside if v[i] is not None]
                previous = next((v[i] for v in reversed(before) if v[i] is not None), None)
                if values:
                    rows.append(
                        _row(node, gpu, metric, bucket, aggregate(metric, previous, values))
                    )
    return rows


def hour_rows(conn: sa.Connection, hour: float, nodes: list[str]) -> list[dict[str, Any]]:
    parts: dict[tuple[str, int, str], list[Aggregate]] = defaultdict(list)
    query = sa.select(rollup_minute).where(
        rollup_minute.c.node.in_(nodes),
        rollup_minute.c.bucket >= hour,
        rollup_minute.c.bucket < hour + HOUR,
    )
    for row in conn.execute(query).mappings():
        parts[(row["node"], row["gpu_index"], row["metric"])].append(
            Aggregate(row["count"], row["avg"], row["min"], row["max"], row["delta"])
        )
    return [
        _row(node, gpu, BY_NAME[metric], hour, merge(aggs))
        for (node, gpu, metric), aggs in parts.items()
    ]


def delete_before(conn: sa.Connection, table: sa.Table, cutoff: float, batch: int) -> int:
    """Delete up to `batch` rows older than `cutoff` (by ts or bucket); returns how many."""
    time_column = table.c.ts if "ts" in table.c else table.c.bucket
    key = list(table.primary_key.columns)
    doomed = sa.select(*key).where(time_column < cutoff).limit(batch)
    result = conn.execute(sa.delete(table).where(sa.tuple_(*key).in_(doomed)))
    return int(result.rowcount or 0)
