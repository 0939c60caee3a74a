"""Retention on SQLite and PostgreSQL: ten days of chunks and minute rollups, raw kept 7
days; one pass removes exactly what expired, and a pass with nothing to expire reads no
row (asserted on the plan, not on time)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sqlalchemy as sa

from coordinator.core import aggregates
from coordinator.store import retention
from coordinator.store import rollups as rollup_rows
from coordinator.store import samples as sample_rows
from coordinator.store.engine import create_engine, upgrade
from coordinator.store.models import raw_chunks, rollup_minute
from shared.messages import Sample, TelemetryBatch

DAY = 86400.0
T0 = 1_763_856_000.0  # a UTC midnight
DAYS = 10
STEP = 60  # s between samples
PER_CHUNK = 10  # samples per batch: a chunk of 10 min
NODES = ("n1", "n2")


def batches() -> list[TelemetryBatch]:
    out = []
    for node in NODES:
        for first in range(0, int(DAYS * DAY) // STEP, PER_CHUNK):
            out.append(
                TelemetryBatch(
                    node=node,
                    seq_first=first,
                    samples=tuple(
                        Sample(
                            ts=T0 + seq * STEP,
                            metrics={"cpu_util_pct": float(seq % 100), "power_w": 200.0},
                        )
                        for seq in range(first, first + PER_CHUNK)
                    ),
                )
            )
    return out


@pytest.fixture(scope="module")
def written():
    return batches()


@pytest.fixture
def engine(db_url, written):
    engine = create_engine(db_url)
    upgrade(engine)
    with engine.begin() as conn:
        for tier in retention.TIERS:
            retention.ensure_partitions(conn, tier, T0, T0 + DAYS * DAY)
        sample_rows.insert_batches(conn, written)
        minutes = [
            rollup_rows.row_of(node, T0 + m * 60, bucket)
            for node in NODES
            for m in range(0, int(DAYS * DAY // 60), 7)  # a minute row every 7 minutes
            if (bucket := one_minute())
        ]
        conn.execute(sa.insert(rollup_minute), minutes)
    yield engine
    engine.dispose()


def one_minute() -> aggregates.Bucket:
    cpu = np.array([[6.0, 50.0, 0.0, 99.0]])  # count, avg, min, max
    return aggregates.Bucket((), {"cpu_util_pct": cpu}, np.array([1.0, 60.0, 1.0]))


def held(conn) -> list[tuple[str, int, float, float]]:
    query = sa.select(raw_chunks.c.node, raw_chunks.c.seq_first, raw_chunks.c.ts_first,
                      raw_chunks.c.ts_last)  # fmt: skip
    return sorted(conn.execute(query).all())


def buckets(conn) -> list[float]:
    return sorted(conn.execute(sa.select(rollup_minute.c.bucket)).scalars())


def expire_all(conn, tier: retention.Tier, cutoff: float) -> int:
    removed = total = retention.expire(conn, tier, cutoff, 5000)
    while removed:
        removed = retention.expire(conn, tier, cutoff, 5000)
        total += removed
    return total


@pytest.mark.parametrize("cutoff_offset", [0.0, 25.0])  # on a chunk boundary, and inside one
def test_one_pass_removes_exactly_what_expired(engine, cutoff_offset):
    now = T0 + DAYS * DAY
    cutoff = now - 7 * DAY + cutoff_offset
    with engine.connect() as conn:
        before = held(conn)
        minutes_before = buckets(conn)
    with engine.begin() as conn:
        retention.expire(conn, retention.RAW, cutoff, 10**6)  # one pass
        expire_all(conn, retention.MINUTES, now - 8 * DAY)
    with engine.connect() as conn:
        after = held(conn)
        minutes_after = buckets(conn)
    # every chunk whose newest sample is older than the cutoff is gone, every other stays
    assert after == [c for c in before if c[3] >= cutoff]
    assert len(before) - len(after) == len(NODES) * 3 * 144  # three days of 10-min chunks
    assert min(c[2] for c in after) == cutoff - cutoff_offset  # a chunk across it stays whole
    assert minutes_after == [b for b in minutes_before if b >= now - 8 * DAY]


def test_a_pass_with_nothing_to_expire_reads_no_row(engine):
    cutoff = T0 + 3 * DAY
    with engine.begin() as conn:
        expire_all(conn, retention.RAW, cutoff)
        expire_all(conn, retention.MINUTES, cutoff)
    if engine.dialect.name == "postgresql":  # the statistics autovacuum keeps in a live store
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("ANALYZE raw_chunks, minute_rollups, hour_rollups"))
    with engine.begin() as conn:
        for tier in retention.TIERS:
            statement = retention.expiry(tier, cutoff, 5000, conn.dialect.name)
            if conn.dialect.name == "postgresql":
                rows_read = read_by(conn, statement)
                assert rows_read == {}, (tier.table.name, rows_read)
            else:
                plan = sqlite_plan(conn, statement)
                assert "SCAN" not in plan, plan
                assert f"INDEX ix_{tier.table.name}_" in plan, plan
        assert retention.expire(conn, retention.RAW, cutoff, 5000) == 0


def read_by(conn, statement) -> dict[str, int]:
    """Rows each scan of the (rolled back) delete's plan read, where it read any (kept or
    filtered out: a sequential scan of a partition holding rows would show them)."""
    compiled = statement.compile(conn, compile_kwargs={"literal_binds": True})
    conn.execute(sa.text("SAVEPOINT plan"))
    (plan,) = conn.execute(sa.text(f"EXPLAIN (ANALYZE, FORMAT JSON) {compiled}")).scalar_one()
    conn.execute(sa.text("ROLLBACK TO SAVEPOINT plan"))
    found: dict[str, int] = {}

    def walk(node: dict) -> None:
        if "Relation Name" in node:
            rows = int(node.get("Actual Rows", 0)) + int(node.get("Rows Removed by Filter", 0))
            if rows:
                found[node["Relation Name"]] = rows
        for child in node.get("Plans", []):
            walk(child)

    walk(plan["Plan"] if isinstance(plan, dict) else json.loads(plan)[0]["Plan"])
    return found


def sqlite_plan(conn, statement) -> str:
    compiled = statement.compile(conn, compile_kwargs={"literal_binds": True})
    rows = conn.execute(sa.text(f"EXPLAIN QUERY PLAN {compiled}")).all()
    return "\n".join(str(row[-1]) for row in rows)
