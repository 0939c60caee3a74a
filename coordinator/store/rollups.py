"""Per-minute and per-hour rollups, and what reads them back.

A minute is rolled up once it has ended (and again if late samples mark it dirty) from the
node's chunks of that minute and the one before (counters and energy start there): one
index range per node, decoded and aggregated with numpy (`core.aggregates`). An hour is
rolled up from its minute rows once it has ended, not every minute.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from coordinator.core import aggregates
from coordinator.core.aggregates import Bucket
from coordinator.core.rollups import bucket_start
from coordinator.store.dialect import upsert
from coordinator.store.models import rollup_dirty, rollup_dirty_hour, rollup_hour, rollup_minute
from coordinator.store.samples import read_blocks
from shared.metrics import METRICS

MINUTE, HOUR = 60.0, 3600.0
METRIC_NAMES = tuple(m.name for m in METRICS if not m.vector)
NODES_PER_QUERY = 500


def roll_up(conn: sa.Connection, before: float, max_gap_s: float, limit: int = 5000) -> int:
    """Roll up up to `limit` dirty minutes that ended before `before`, then the ended
    hours they dirtied. Returns the minutes done."""
    dirty = conn.execute(
        sa.select(rollup_dirty.c.node, rollup_dirty.c.bucket)
        .where(rollup_dirty.c.bucket + MINUTE <= before)
        .order_by(rollup_dirty.c.bucket, rollup_dirty.c.node)
        .limit(limit)
    ).all()
    by_bucket: dict[float, list[str]] = defaultdict(list)
    for node, minute in dirty:
        by_bucket[minute].append(node)
    for minute, nodes in by_bucket.items():
        for i in range(0, len(nodes), NODES_PER_QUERY):
            roll_minute(conn, minute, nodes[i : i + NODES_PER_QUERY], max_gap_s)
    if dirty:
        conn.execute(
            sa.delete(rollup_dirty).where(
                sa.tuple_(rollup_dirty.c.node, rollup_dirty.c.bucket).in_(dirty)
            )
        )
        hours = sorted({(n, bucket_start(m, HOUR)) for n, m in dirty})
        conn.execute(
            upsert(conn, rollup_dirty_hour).on_conflict_do_nothing(),
            [{"node": n, "bucket": h} for n, h in hours],
        )
    roll_hours(conn, before)
    return len(dirty)


def roll_minute(conn: sa.Connection, minute: float, nodes: Sequence[str], max_gap_s: float) -> None:
    lookback = max(MINUTE, max_gap_s)
    blocks = read_blocks(conn, nodes, minute - lookback, minute + MINUTE)
    rows = []
    for node in nodes:
        found = aggregates.gather(blocks.get(node, []))
        keep = found.ts >= minute - lookback
        part = aggregates.bucket(_rows_where(found, keep), minute, minute + MINUTE, max_gap_s)
        if part is not None:
            rows.append(row_of(node, minute, part))
    replace(conn, rollup_minute, minute, list(nodes), rows)


def _rows_where(rows: aggregates.Rows, keep: Any) -> aggregates.Rows:
    return aggregates.Rows(rows.ts[keep], rows.node[keep], rows.gpu[keep], rows.gpus,
                           rows.counter_j[keep])  # fmt: skip


def roll_hours(conn: sa.Connection, before: float, limit: int = 5000) -> int:
    """Each dirty hour that has ended, from its minutes."""
    dirty = conn.execute(
        sa.select(rollup_dirty_hour.c.node, rollup_dirty_hour.c.bucket)
        .where(rollup_dirty_hour.c.bucket + HOUR <= before)
        .order_by(rollup_dirty_hour.c.bucket)
        .limit(limit)
    ).all()
    by_hour: dict[float, list[str]] = defaultdict(list)
    for node, hour in dirty:
        by_hour[hour].append(node)
    for hour, nodes in by_hour.items():
        for i in range(0, len(nodes), NODES_PER_QUERY):
            names = nodes[i : i + NODES_PER_QUERY]
            parts = read_buckets(conn, rollup_minute, names, hour, hour + HOUR, METRIC_NAMES)
            rows = [
                row_of(node, hour, aggregates.merge([b for _, b in parts[node]]))
                for node in names
                if parts.get(node)
            ]
            replace(conn, rollup_hour, hour, names, rows)
    if dirty:
        conn.execute(
            sa.delete(rollup_dirty_hour).where(
                sa.tuple_(rollup_dirty_hour.c.node, rollup_dirty_hour.c.bucket).in_(dirty)
            )
        )
    return len(dirty)


def row_of(node: str, bucket: float, part: Bucket) -> dict[str, Any]:
    row: dict[str, Any] = {
        "node": node,
        "bucket": bucket,
        "gpus": bytes(part.gpus),
        "usage": aggregates.pack_usage(part.usage),
    }
    for name in METRIC_NAMES:
        values = part.metrics.get(name)
        present = values is not None and bool((values[:, aggregates.COUNT] > 0).any())
        row[name] = aggregates.pack(values) if values is not None and present else None
    return row


def replace(
    conn: sa.Connection, table: sa.Table, bucket: float, nodes: list[str], rows: list[dict]
) -> None:
    conn.execute(sa.delete(table).where(table.c.bucket == bucket, table.c.node.in_(nodes)))
    if rows:
        conn.execute(sa.insert(table), rows)


def read_buckets(  # noqa: PLR0917 - the query's parts, read as a sentence
    conn: sa.Connection,
    table: sa.Table,
    nodes: Sequence[str] | None,
    since: float,
    until: float,
    metrics: Iterable[str],
) -> dict[str, list[tuple[float, Bucket]]]:
    """Per node, (bucket start, aggregates of `metrics`) in [since, until), oldest first
    (`nodes` None: every node)."""
    names = list(metrics)
    query = sa.select(
        table.c.node, table.c.bucket, table.c.gpus, table.c.usage, *(table.c[n] for n in names)
    ).where(table.c.bucket >= since, table.c.bucket < until)
    if nodes is not None:
        query = query.where(table.c.node.in_(nodes))
    found: dict[str, list[tuple[float, Bucket]]] = defaultdict(list)
    for node, start, gpus, use, *blobs in conn.execute(query.order_by(table.c.bucket)):
        values = {n: aggregates.unpack(b) for n, b in zip(names, blobs, strict=True) if b}
        found[node].append(
            (float(start), Bucket(tuple(gpus), values, aggregates.unpack_usage(use)))
        )
    return found
