"""Raw samples: stored once per (node, seq), and what the store holds of each node."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from coordinator.core.rollups import bucket_start
from coordinator.core.storegaps import Found, Mark
from coordinator.store.dialect import insert_new
from coordinator.store.models import gpu_samples, rollup_dirty, samples
from coordinator.store.rollups import GPU_METRICS, MINUTE
from shared.messages import TelemetryBatch
from shared.metrics import Scope, metrics_in

Insert = Callable[[sa.Connection, sa.Table, Sequence[dict[str, Any]]], int]


def insert_batches(
    conn: sa.Connection, batches: Sequence[TelemetryBatch], insert: Insert = insert_new
) -> int:
    """Store samples; (node, seq) already stored are skipped. Returns the samples stored
    (the rest were duplicates). (`insert` is the write: COPY on PostgreSQL; the benchmark
    passes its peer.)"""
    node_rows: list[dict[str, Any]] = []
    gpu_rows: list[dict[str, Any]] = []
    dirty: set[tuple[str, float]] = set()
    for batch in batches:
        for i, sample in enumerate(batch.samples):
            seq = batch.seq_first + i
            row = {"node": batch.node, "seq": seq, "ts": sample.ts}
            row.update(zip(NODE_COLUMNS, map(sample.metrics.get, NODE_COLUMNS), strict=True))
            node_rows.append(row)
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
    stored = insert(conn, samples, node_rows)
    insert(conn, gpu_samples, gpu_rows)
    insert(conn, rollup_dirty, [{"node": n, "bucket": b} for n, b in sorted(dirty)])
    return stored


NODE_COLUMNS = tuple(m.name for m in metrics_in(Scope.NODE))  # vectors go in as tuples


def stored_high(conn: sa.Connection) -> dict[str, int]:
    rows = conn.execute(
        sa.select(samples.c.node, sa.func.max(samples.c.seq)).group_by(samples.c.node)
    )
    return {node: int(high) for node, high in rows}


MARKS_PER_QUERY = 1000


def _marks(chunk: Sequence[Mark]) -> Any:
    return sa.values(
        sa.column("node", sa.String),
        sa.column("above", sa.BigInteger),
        sa.column("horizon", sa.Double),
        name="marks",
    ).data([(m.node, m.above, m.horizon) for m in chunk])


def _above(marks: Any) -> Any:
    return sa.and_(
        samples.c.node == marks.c.node,
        samples.c.seq > marks.c.above,
        samples.c.ts <= marks.c.horizon,
    )


def found_above(conn: sa.Connection, marks: Sequence[Mark]) -> dict[str, Found]:
    """Per node: how many samples are stored above its mark, and the highest (PostgreSQL:
    a VALUES list joined on the (node, seq) key, so each node costs one index range)."""
    found: dict[str, Found] = {}
    for i in range(0, len(marks), MARKS_PER_QUERY):
        values = _marks(marks[i : i + MARKS_PER_QUERY])
        rows = conn.execute(
            sa.select(samples.c.node, sa.func.count(), sa.func.max(samples.c.seq))
            .select_from(samples.join(values, _above(values)))
            .group_by(samples.c.node)
        )
        found |= {node: Found(int(count), int(high)) for node, count, high in rows}
    return found


def seqs_above(conn: sa.Connection, marks: Sequence[Mark]) -> dict[str, list[int]]:
    """The stored seqs above each node's mark, ascending (for the nodes with holes)."""
    seqs: dict[str, list[int]] = {m.node: [] for m in marks}
    for i in range(0, len(marks), MARKS_PER_QUERY):
        values = _marks(marks[i : i + MARKS_PER_QUERY])
        rows = conn.execute(
            sa.select(samples.c.node, samples.c.seq)
            .select_from(samples.join(values, _above(values)))
            .order_by(samples.c.node, samples.c.seq)
        )
        for node, seq in rows:
            seqs[node].append(int(seq))
    return seqs
