"""the fleet store: raw samples as compact chunks, a rollup row per node and bucket,
day partitions on PostgreSQL

The old rows convert in place, in batches, with progress logged: raw samples into chunks
(exact), old minute and hour rollups into the new rows (their energy usage estimated from
the counters' increases, awake time as the bucket's span); every minute that still has raw
samples is marked dirty, so the leader rolls it up again exactly from the chunks.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

import logging
from collections import defaultdict
from typing import Any

import numpy as np
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None
log = logging.getLogger("alembic.runtime.migration")

ROLLUP_METRICS = (
    "cpu_util_pct", "cpu_freq_mhz", "load_avg_1m", "load_avg_5m", "load_avg_15m",
    "mem_total_bytes", "mem_used_bytes", "mem_available_bytes", "swap_used_bytes",
    "rapl_package_energy_j", "rapl_dram_energy_j", "rapl_power_w", "power_w", "connections",
    "jobs_running", "spool_memory_samples", "gpu_util_pct", "gpu_mem_util_pct",
    "gpu_mem_used_bytes", "gpu_mem_total_bytes", "gpu_power_w", "gpu_energy_j", "gpu_temp_c",
    "gpu_xid_count", "gpu_xid_last", "gpu_ecc_volatile_corrected",
    "gpu_ecc_volatile_uncorrected", "gpu_ecc_aggregate_corrected",
    "gpu_ecc_aggregate_uncorrected", "gpu_remap_correctable_rows",
    "gpu_remap_uncorrectable_rows", "gpu_remap_pending", "gpu_remap_failed",
    "gpu_retired_pages_pending", "gpu_pcie_replay_count", "gpu_throttle_power_cap",
    "gpu_throttle_thermal", "gpu_throttle_hw_slowdown", "gpu_clock_sm_mhz",
    "gpu_clock_mem_mhz", "gpu_power_limit_w",
)  # fmt: skip
ENERGY_COUNTERS = ("rapl_package_energy_j", "rapl_dram_energy_j", "gpu_energy_j")
BATCH = 20_000
CONVERT_CHUNK = 120  # samples per converted chunk (Prometheus' chunk size)


def _pg() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _rollup(name: str, partitioned: bool) -> None:
    op.create_table(
        name,
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("bucket", sa.Double(), nullable=False),
        sa.Column("gpus", sa.LargeBinary(), nullable=False),
        sa.Column("usage", sa.LargeBinary(), nullable=False),
        *(sa.Column(m, sa.LargeBinary(), nullable=True) for m in ROLLUP_METRICS),
        sa.PrimaryKeyConstraint("node", "bucket", name=op.f(f"pk_{name}")),
        **({"postgresql_partition_by": "RANGE (bucket)"} if partitioned else {}),  # type: ignore[arg-type]
    )
    op.create_index(
        op.f(f"ix_{name}_bucket"), name, ["bucket"],
        postgresql_include=["node", "gpus", "usage", "power_w", "cpu_util_pct",
                            "mem_used_bytes", "gpu_util_pct"],
    )  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "chunk_schemas",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("names", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chunk_schemas")),
    )
    op.create_table(
        "raw_chunks",
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("seq_first", sa.BigInteger(), nullable=False),
        sa.Column("ts_first", sa.Double(), nullable=False),
        sa.Column("seq_last", sa.BigInteger(), nullable=False),
        sa.Column("ts_last", sa.Double(), nullable=False),
        sa.Column("schema_id", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("node", "seq_first", "ts_first", name=op.f("pk_raw_chunks")),
        postgresql_partition_by="RANGE (ts_first)",
    )
    op.create_index(op.f("ix_raw_chunks_ts_first"), "raw_chunks", ["ts_first"])
    op.create_index(op.f("ix_raw_chunks_ts_last"), "raw_chunks", ["ts_last"])
    op.create_index(op.f("ix_raw_chunks_node_ts_first"), "raw_chunks", ["node", "ts_first"])
    op.create_table(
        "gpu_uuids",
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("gpu_index", sa.SmallInteger(), nullable=False),
        sa.Column("uuid", sa.String(length=96), nullable=False),
        sa.Column("first_ts", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("node", "gpu_index", "uuid", name=op.f("pk_gpu_uuids")),
    )
    _rollup("minute_rollups", partitioned=True)
    _rollup("hour_rollups", partitioned=False)
    op.create_table(
        "rollup_dirty_hour",
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("bucket", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("node", "bucket", name=op.f("pk_rollup_dirty_hour")),
    )
    if _pg():
        for parent in ("raw_chunks", "minute_rollups"):
            op.execute(f"CREATE TABLE {parent}_default PARTITION OF {parent} DEFAULT")
    conn = op.get_bind()
    _convert_samples(conn)
    for old, new in (("rollup_minute", "minute_rollups"), ("rollup_hour", "hour_rollups")):
        _convert_rollups(conn, old, new)
    op.execute("DELETE FROM rollup_dirty")  # old dirty minutes: marked again from the chunks
    for table in ("gpu_samples", "samples", "rollup_minute", "rollup_hour"):
        op.drop_table(table)


def _convert_samples(conn: sa.Connection) -> None:
    """Old raw rows, node by node in seq order, into chunks; their minutes marked dirty."""
    from coordinator.store import samples as chunk_rows  # noqa: PLC0415 - the code of now
    from shared.messages import GpuSample, Sample, TelemetryBatch  # noqa: PLC0415

    meta = sa.MetaData()
    samples = sa.Table("samples", meta, autoload_with=conn)
    gpu_samples = sa.Table("gpu_samples", meta, autoload_with=conn)
    total = conn.execute(sa.select(sa.func.count()).select_from(samples)).scalar_one()
    if not total:
        return
    _ensure_days(conn, samples.c.ts)
    node_columns = [c.name for c in samples.columns if c.name not in {"node", "seq", "ts"}]
    gpu_columns = [
        c.name
        for c in gpu_samples.columns
        if c.name not in {"node", "seq", "ts", "gpu_index", "uuid"}
    ]
    done, after = 0, ("", -1)
    while True:
        rows = (
            conn.execute(
                sa.select(samples)
                .where(sa.tuple_(samples.c.node, samples.c.seq) > sa.tuple_(*after))
                .order_by(samples.c.node, samples.c.seq)
                .limit(BATCH)
            )
            .mappings()
            .all()
        )
        if not rows:
            break
        gpus = defaultdict(list)
        lo, hi = (rows[0]["node"], rows[0]["seq"]), (rows[-1]["node"], rows[-1]["seq"])
        for g in conn.execute(
            sa.select(gpu_samples)
            .where(
                sa.tuple_(gpu_samples.c.node, gpu_samples.c.seq).between(
                    sa.tuple_(*lo), sa.tuple_(*hi)
                )
            )
            .order_by(gpu_samples.c.node, gpu_samples.c.seq, gpu_samples.c.gpu_index)
        ).mappings():
            gpus[(g["node"], g["seq"])].append(
                GpuSample(
                    index=g["gpu_index"],
                    uuid=g["uuid"],
                    metrics={c: g[c] for c in gpu_columns if g[c] is not None},
                )
            )
        batches: list[tuple[str, int, list[Sample]]] = []
        for row in rows:
            metrics = {c: _plain(row[c]) for c in node_columns if row[c] is not None}
            sample = Sample(
                ts=row["ts"], metrics=metrics, gpus=tuple(gpus[(row["node"], row["seq"])])
            )
            last = batches[-1] if batches else None
            if (
                last is not None
                and last[0] == row["node"]
                and last[1] + len(last[2]) == row["seq"]
                and len(last[2]) < CONVERT_CHUNK
            ):
                last[2].append(sample)
            else:
                batches.append((row["node"], row["seq"], [sample]))
        chunk_rows.insert_batches(
            conn,
            [TelemetryBatch(node=n, seq_first=s, samples=tuple(b)) for n, s, b in batches],
        )
        done += len(rows)
        after = (rows[-1]["node"], rows[-1]["seq"])
        log.info("raw samples converted to chunks: %d of %d", done, total)


def _plain(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _ensure_days(conn: sa.Connection, column: sa.Column) -> None:
    """PostgreSQL: a day partition for every day the old rows span (not the default)."""
    from coordinator.store import retention  # noqa: PLC0415

    first, last = conn.execute(sa.select(sa.func.min(column), sa.func.max(column))).one()
    if first is not None:
        for tier in (retention.RAW, retention.MINUTES):
            retention.ensure_partitions(conn, tier, first, last)


def _convert_rollups(conn: sa.Connection, old_name: str, new_name: str) -> None:
    """Old (node, GPU, metric, bucket) rows into one row per (node, bucket)."""
    meta = sa.MetaData()
    old = sa.Table(old_name, meta, autoload_with=conn)
    new = sa.Table(new_name, meta, autoload_with=conn)
    total = conn.execute(sa.select(sa.func.count()).select_from(old)).scalar_one()
    if not total:
        return
    _ensure_days(conn, old.c.bucket)
    done, after = 0, ("", -1.0)
    while True:
        keys = conn.execute(
            sa.select(old.c.node, old.c.bucket)
            .where(sa.tuple_(old.c.node, old.c.bucket) > sa.tuple_(*after))
            .group_by(old.c.node, old.c.bucket)
            .order_by(old.c.node, old.c.bucket)
            .limit(BATCH // 50)
        ).all()
        if not keys:
            break
        lo, hi = keys[0], keys[-1]
        parts: dict[tuple[str, float], list[Any]] = defaultdict(list)
        for row in conn.execute(
            sa.select(old).where(
                sa.tuple_(old.c.node, old.c.bucket).between(sa.tuple_(*lo), sa.tuple_(*hi))
            )
        ).mappings():
            parts[(row["node"], row["bucket"])].append(row)
        width = 60.0 if old_name == "rollup_minute" else 3600.0
        conn.execute(sa.insert(new), [_row(n, b, rows, width) for (n, b), rows in parts.items()])
        done += sum(len(r) for r in parts.values())
        after = tuple(hi)
        log.info("%s converted: %d of %d rows", old_name, done, total)


def _row(node: str, bucket: float, rows: list[Any], width: float) -> dict[str, Any]:
    gpus = sorted({r["gpu_index"] for r in rows if r["gpu_index"] >= 0})
    arrays: dict[str, np.ndarray] = {}
    energy = 0.0
    for r in rows:
        entries = 1 if r["gpu_index"] < 0 else len(gpus)
        at = 0 if r["gpu_index"] < 0 else gpus.index(r["gpu_index"])
        array = arrays.setdefault(r["metric"], np.full((entries, 4), np.nan))
        value = r["delta"] if r["delta"] is not None else r["avg"]
        array[at] = (r["count"], np.nan if value is None else value, _nan(r["min"]), _nan(r["max"]))
        if r["metric"] in ENERGY_COUNTERS and r["delta"] is not None:
            energy += r["delta"]
    for array in arrays.values():
        array[np.isnan(array[:, 0]), 0] = 0
    out: dict[str, Any] = {
        "node": node,
        "bucket": bucket,
        "gpus": bytes(gpus),
        "usage": np.array([energy, width, 1.0 if energy else 0.0]).tobytes(),
    }
    for name in ROLLUP_METRICS:
        out[name] = arrays[name].astype(np.float32).tobytes() if name in arrays else None
    return out


def _nan(value: float | None) -> float:
    return np.nan if value is None else value


def downgrade() -> None:
    raise NotImplementedError("the fleet store does not convert back; restore a backup")
