"""Every SQL statement the coordinator runs. Callers pass and get plain values."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from coordinator.core.registry import NodeView
from coordinator.core.rollups import Aggregate, bucket_start, counter, gauge, merge
from coordinator.store.models import (
    Node,
    gpu_samples,
    rollup_dirty,
    rollup_hour,
    rollup_minute,
    samples,
    stats,
)
from shared.messages import Hello, TelemetryBatch
from shared.metrics import BY_NAME, Kind, Metric, Scope, metrics_in

MINUTE, HOUR = 60.0, 3600.0
NODE_METRICS = [m for m in metrics_in(Scope.NODE) if not m.vector]
GPU_METRICS = list(metrics_in(Scope.GPU))


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def insert_batches(conn: sa.Connection, batches: Sequence[TelemetryBatch]) -> int:
    """Store samples; (node, seq) already stored are skipped. Returns samples offered."""
    node_rows, gpu_rows, dirty = [], [], set()
    for batch in batches:
        for i, sample in enumerate(batch.samples):
            seq = batch.seq_first + i
            node_rows.append(
                {
                    "node": batch.node,
                    "seq": seq,
                    "ts": sample.ts,
                    **{
                        m.name: _value(m, sample.metrics.get(m.name))
                        for m in metrics_in(Scope.NODE)
                    },
                }
            )
            gpu_rows.extend(
                {
                    "node": batch.node,
                    "seq": seq,
                    "gpu_index": g.index,
                    "uuid": g.uuid,
                    "ts": sample.ts,
                    **{m.name: g.metrics.get(m.name) for m in GPU_METRICS},
                }
                for g in sample.gpus
            )
            dirty.add((batch.node, bucket_start(sample.ts, MINUTE)))
    if node_rows:
        conn.execute(_insert(conn, samples).on_conflict_do_nothing(), node_rows)
    if gpu_rows:
        conn.execute(_insert(conn, gpu_samples).on_conflict_do_nothing(), gpu_rows)
    if dirty:
        conn.execute(
            _insert(conn, rollup_dirty).on_conflict_do_nothing(),
            [{"node": n, "bucket": b} for n, b in sorted(dirty)],
        )
    return len(node_rows)


def _value(metric: Metric, value: Any) -> Any:
    return list(value) if metric.vector and value is not None else value


def stored_high(conn: sa.Connection) -> dict[str, int]:
    rows = conn.execute(
        sa.select(samples.c.node, sa.func.max(samples.c.seq)).group_by(samples.c.node)
    )
    return {node: int(high) for node, high in rows}


def save_nodes(conn: sa.Connection, views: Iterable[NodeView]) -> None:
    rows = [
        {
            "name": v.name,
            "state": v.state,
            "state_since": v.state_since,
            "last_seen": v.last_seen,
            "latest": v.latest,
            "hostname": v.hello.hostname if v.hello else None,
            "agent_version": v.hello.agent_version if v.hello else None,
            "cpus": v.hello.cpus if v.hello else None,
            "mem_total_bytes": v.hello.mem_total_bytes if v.hello else None,
            "hello": v.hello.to_wire() if v.hello else None,
        }
        for v in views
    ]
    if not rows:
        return
    table = Node.__table__
    statement = _insert(conn, table)  # type: ignore[arg-type]
    updated = {c: statement.excluded[c] for c in rows[0] if c != "name"}
    conn.execute(statement.on_conflict_do_update(index_elements=["name"], set_=updated), rows)


def load_nodes(conn: sa.Connection) -> list[NodeView]:
    views = []
    for row in conn.execute(sa.select(Node.__table__).order_by("name")).mappings():
        hello = Hello.from_wire(row["hello"]) if row["hello"] else None
        views.append(
            NodeView(
                name=row["name"],
                state=row["state"],
                state_since=row["state_since"],
                last_seen=row["last_seen"],
                hello=hello,
                latest=row["latest"] or {},
            )
        )
    return views


def write_stats(conn: sa.Connection, values: dict[str, float], now: float) -> None:
    statement = _insert(conn, stats)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["key"],
            set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
        ),
        [{"key": k, "value": v, "updated_at": now} for k, v in values.items()],
    )


def read_stats(conn: sa.Connection) -> dict[str, tuple[float, float]]:
    return {k: (v, at) for k, v, at in conn.execute(sa.select(stats))}


# Rollups ---------------------------------------------------------------------------------


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
    for hour, nodes in hours.items():
        _replace(conn, rollup_hour, hour, sorted(nodes), hour_rows(conn, hour, sorted(nodes)))
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


# Retention -------------------------------------------------------------------------------


def delete_before(conn: sa.Connection, table: sa.Table, cutoff: float, batch: int) -> int:
    """Delete up to `batch` rows older than `cutoff` (by ts or bucket); returns how many."""
    time_column = table.c.ts if "ts" in table.c else table.c.bucket
    key = list(table.primary_key.columns)
    doomed = sa.select(*key).where(time_column < cutoff).limit(batch)
    result = conn.execute(sa.delete(table).where(sa.tuple_(*key).in_(doomed)))
    return int(result.rowcount or 0)


# History ---------------------------------------------------------------------------------


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


def known_nodes(conn: sa.Connection) -> list[str]:
    return list(conn.execute(sa.select(Node.name).order_by(Node.name)).scalars())


def store_size_bytes(conn: sa.Connection) -> int | None:
    if conn.dialect.name == "postgresql":
        return int(
            conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one()
        )
    pages = conn.execute(sa.text("PRAGMA page_count")).scalar_one()
    size = conn.execute(sa.text("PRAGMA page_size")).scalar_one()
    return int(pages) * int(size)
