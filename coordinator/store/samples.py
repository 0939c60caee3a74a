"""Raw samples: stored once per (node, seq), and what the store holds of each node."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from coordinator.core.rollups import bucket_start
from coordinator.store.dialect import insert_new, upsert
from coordinator.store.models import gpu_samples, rollup_dirty, samples
from coordinator.store.rollups import GPU_METRICS, MINUTE
from shared.messages import TelemetryBatch
from shared.metrics import Metric, Scope, metrics_in

Insert = Callable[[sa.Connection, sa.Table, Sequence[dict[str, Any]]], None]


def insert_batches(
    conn: sa.Connection, batches: Sequence[TelemetryBatch], insert: Insert = insert_new
) -> int:
    """Store samples; (node, seq) already stored are skipped. Returns samples offered.
    (`insert` is the write: COPY on PostgreSQL; the benchmark passes its peer.)"""
    node_rows: list[dict[str, Any]] = []
    gpu_rows: list[dict[str, Any]] = []
    dirty: set[tuple[str, float]] = set()
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
    insert(conn, samples, node_rows)
    insert(conn, gpu_samples, gpu_rows)
    if dirty:
        conn.execute(
            upsert(conn, rollup_dirty).on_conflict_do_nothing(),
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
