"""The store on SQLite and PostgreSQL: migrations, dedupe, nodes, rollups, retention, history."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from coordinator.core.live import Live
from coordinator.core.nodestate import NodeState
from coordinator.core.registry import NodeView
from coordinator.core.rollups import counter, gauge
from coordinator.core.series import SeriesQuery
from coordinator.store import leadership as leader_rows
from coordinator.store import live as live_rows
from coordinator.store import models
from coordinator.store import nodes as node_rows
from coordinator.store import rollups as rollup_rows
from coordinator.store import samples as sample_rows
from coordinator.store import series as series_rows
from coordinator.store import stats as stat_rows
from coordinator.store import workers as worker_rows
from coordinator.store.engine import create_engine, current_revision, head_revision, upgrade
from coordinator.store.models import Base, rollup_dirty, rollup_hour, rollup_minute, samples
from shared.messages import GpuSample, Sample, TelemetryBatch
from shared.metrics import BY_NAME
from tests import factories

T0 = 1_763_884_800.0  # a whole hour


@pytest.fixture
def engine(db_url):
    engine = create_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def batch(node: str, seq_first: int, points: list[tuple[float, float, float]]) -> TelemetryBatch:
    """Samples of (ts, cpu_util_pct, energy_j) with one GPU."""
    return TelemetryBatch(
        node=node,
        seq_first=seq_first,
        samples=tuple(
            Sample(
                ts=ts,
                metrics={"cpu_util_pct": cpu, "rapl_package_energy_j": energy},
                gpus=(GpuSample(index=0, uuid="GPU-a", metrics={"gpu_util_pct": cpu / 2}),),
            )
            for ts, cpu, energy in points
        ),
    )


def test_migrations_reach_head_and_match_the_models(engine):
    assert current_revision(engine) == head_revision() == "0009"
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], "models and migrations differ: add a migration"
    assert upgrade(engine) == "0009"  # idempotent


def test_redelivered_samples_are_stored_once(engine):
    first = batch("n1", 0, [(T0 + i, 10.0, 100.0 + i) for i in range(5)])
    with engine.begin() as conn:
        sample_rows.insert_batches(conn, [first])
        sample_rows.insert_batches(conn, [first, batch("n1", 3, [(T0 + 3, 10.0, 103.0)] * 4)])
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(samples)).scalar() == 7
        assert sample_rows.stored_high(conn) == {"n1": 6}


def test_nodes_round_trip(engine):
    view = NodeView(
        name="gpu-01",
        state=NodeState.ONLINE,
        state_since=T0,
        last_seen=T0 + 5,
        hello=factories.hello(),
        latest={"cpu_util_pct": 12.5, "gpus": 1},
    )
    with engine.begin() as conn:
        node_rows.save_nodes(conn, [view])
        view.state = "offline"
        node_rows.save_nodes(conn, [view])
    with engine.connect() as conn:
        (loaded,) = node_rows.load_nodes(conn)
    assert loaded == view


def test_rollups_equal_direct_aggregation(engine):
    # two nodes, 3 minutes at 2 s; the energy counter resets once (agent restart)
    points = []
    for i in range(90):
        energy = 1000.0 + 7 * i if i < 50 else 3.0 * (i - 49)
        points.append((T0 + 2 * i, float(i % 17), energy))
    with engine.begin() as conn:
        sample_rows.insert_batches(conn, [batch("n1", 0, points), batch("n2", 0, points[:30])])
        done = rollup_rows.roll_up(conn, before=T0 + 3600)
    assert done == 3 + 1
    with engine.connect() as conn:
        minutes = (
            conn.execute(
                sa.select(rollup_minute).where(
                    rollup_minute.c.node == "n1", rollup_minute.c.gpu_index == -1
                )
            )
            .mappings()
            .all()
        )
        hours = (
            conn.execute(
                sa.select(rollup_hour).where(
                    rollup_hour.c.node == "n1", rollup_hour.c.gpu_index == -1
                )
            )
            .mappings()
            .all()
        )
        gpu_hour = (
            conn.execute(
                sa.select(rollup_hour).where(
                    rollup_hour.c.node == "n1", rollup_hour.c.gpu_index == 0
                )
            )
            .mappings()
            .one()
        )
        assert conn.execute(sa.select(sa.func.count()).select_from(rollup_dirty)).scalar() == 0
    for minute in range(3):
        start = T0 + 60 * minute
        inside = [p for p in points if start <= p[0] < start + 60]
        before = [p for p in points if p[0] < start]
        cpu = next(r for r in minutes if r["bucket"] == start and r["metric"] == "cpu_util_pct")
        expected = gauge([p[1] for p in inside])
        assert (cpu["count"], cpu["min"], cpu["max"]) == (
            expected.count,
            expected.min,
            expected.max,
        )
        assert cpu["avg"] == pytest.approx(expected.avg)
        energy = next(
            r for r in minutes if r["bucket"] == start and r["metric"] == "rapl_package_energy_j"
        )
        previous = before[-1][2] if before else None
        assert energy["delta"] == pytest.approx(counter(previous, [p[2] for p in inside]).delta)
    hour_cpu = next(r for r in hours if r["metric"] == "cpu_util_pct")
    assert hour_cpu["avg"] == pytest.approx(sum(p[1] for p in points) / 90)
    assert hour_cpu["count"] == 90
    hour_energy = next(r for r in hours if r["metric"] == "rapl_package_energy_j")
    assert hour_energy["delta"] == pytest.approx(counter(None, [p[2] for p in points]).delta)
    assert gpu_hour["avg"] == pytest.approx(sum(p[1] / 2 for p in points) / 90)


def test_late_samples_recompute_their_minute(engine):
    with engine.begin() as conn:
        sample_rows.insert_batches(conn, [batch("n1", 0, [(T0 + 1, 10.0, 1.0)])])
        rollup_rows.roll_up(conn, before=T0 + 600)
        sample_rows.insert_batches(conn, [batch("n1", 1, [(T0 + 2, 30.0, 2.0)])])  # a resent gap
        rollup_rows.roll_up(conn, before=T0 + 600)
        row = (
            conn.execute(
                sa.select(rollup_minute).where(
                    rollup_minute.c.metric == "cpu_util_pct", rollup_minute.c.gpu_index == -1
                )
            )
            .mappings()
            .one()
        )
    assert (row["count"], row["avg"]) == (2, 20.0)


def test_minutes_still_open_are_not_rolled_up(engine):
    with engine.begin() as conn:
        sample_rows.insert_batches(conn, [batch("n1", 0, [(T0 + 1, 10.0, 1.0)])])
        assert rollup_rows.roll_up(conn, before=T0 + 59) == 0
        assert rollup_rows.roll_up(conn, before=T0 + 60) == 1


def test_retention_deletes_only_what_is_due(engine):
    with engine.begin() as conn:
        sample_rows.insert_batches(conn, [batch("n1", 0, [(T0 + i, 1.0, 1.0) for i in range(100)])])
        deleted = 0
        while removed := rollup_rows.delete_before(conn, samples, T0 + 42, batch=10):
            deleted += removed
        assert deleted == 42
        left = conn.execute(sa.select(sa.func.min(samples.c.ts), sa.func.count())).one()
    assert left == (T0 + 42, 58)


def test_history_from_each_tier(engine):
    points = [(T0 + 10 * i, float(i % 100), 100.0 + i) for i in range(360)]  # 1 h at 10 s
    with engine.begin() as conn:
        sample_rows.insert_batches(conn, [batch("n1", 0, points)])
        rollup_rows.roll_up(conn, before=T0 + 1800)  # the second half stays raw
    cpu = BY_NAME["cpu_util_pct"]
    query = SeriesQuery(node="n1", metric=cpu, gpu_index=-1, since=T0, until=T0 + 3600, step_s=600)
    with engine.connect() as conn:
        raw = series_rows.history(conn, query, "raw")
        minute = series_rows.history(conn, query, "minute")
        energy = series_rows.history(
            conn,
            SeriesQuery(
                node="n1",
                metric=BY_NAME["rapl_package_energy_j"],
                gpu_index=-1,
                since=T0,
                until=T0 + 3600,
                step_s=600,
            ),
            "minute",
        )
    assert [p.ts for p in raw] == [T0 + 600 * k for k in range(6)]
    assert [p.agg.avg for p in minute] == pytest.approx([p.agg.avg for p in raw])
    assert [p.agg.count for p in minute] == [60] * 6
    assert sum(p.agg.delta for p in energy) == pytest.approx(359.0)


def test_store_size(engine):
    with engine.connect() as conn:
        assert stat_rows.store_size_bytes(conn) > 0


def test_each_takeover_gets_a_higher_epoch_never_below_the_clock(engine):
    with engine.begin() as conn:
        assert leader_rows.current(conn) is None
        first = leader_rows.take(conn, "a:1", 1_000.0)
        second = leader_rows.take(conn, "b:2", 1_000.5)  # the same second: one more
        assert (first, second) == (1_000, 1_001)
        assert leader_rows.take(conn, "a:3", 5_000.0) == 5_000  # time moved on: its seconds
        assert leader_rows.renew(conn, "a:3", 5_000, 5_001.0)
        assert not leader_rows.renew(conn, "b:2", 1_001, 5_002.0)  # not the leader any more
        found = leader_rows.current(conn)
    assert found == leader_rows.Leader("a:3", 5_000, 5_000.0, 5_001.0)


def test_bulk_writes_store_each_node_seq_once_with_every_value(engine):
    batch = factories.telemetry(node="n1", seq_first=10, count=4)
    again = factories.telemetry(node="n1", seq_first=12, count=4)  # 12, 13 repeated
    with engine.begin() as conn:
        counts = [
            sample_rows.insert_batches(conn, [batch, again, batch]),  # repeats within a write
            sample_rows.insert_batches(conn, [again]),  # and across writes
        ]
    with engine.connect() as conn:
        stored = conn.execute(
            sa.select(models.samples).where(models.samples.c.node == "n1").order_by("seq")
        ).mappings()
        rows = [dict(r) for r in stored]
        gpus = conn.execute(sa.select(sa.func.count()).select_from(models.gpu_samples)).scalar()
    assert [r["seq"] for r in rows] == list(range(10, 16))
    assert counts == [6, 0]  # what each write stored: the rest were duplicates
    assert gpus == 6
    first = rows[0]
    assert first["ts"] == batch.samples[0].ts  # floats exact
    assert first["cpu_core_util_pct"] == [10.0, 15.0]  # a vector, as JSON
    assert (first["mem_used_bytes"], first["power_w"], first["jobs_running"]) == (2**33, None, 1)


def test_node_live_rows_only_move_forward_and_are_read_by_when_stored(engine):
    def row(node: str, seq: int) -> Live:
        return Live(node, time.time(), seq, 0, {"seq": seq, "ts": factories.TS})

    before = time.time() - 1
    with engine.begin() as conn:
        live_rows.write_live(conn, [row("n1", 10), row("n2", 3)])
    with engine.begin() as conn:
        live_rows.write_live(conn, [row("n1", 9)])  # an older batch: kept out
    with engine.connect() as conn:
        found = {r.node: r for r in live_rows.read_live(conn, before)}
        later = live_rows.read_live(conn, time.time() + 60)
    assert {n: (r.seq, r.latest["seq"]) for n, r in found.items()} == {"n1": (10, 10), "n2": (3, 3)}
    assert all(abs(r.seen_at - time.time()) < 30 for r in found.values())
    assert later == []


def test_worker_rows_are_listed_while_recent_and_forgotten_later(engine):
    with engine.begin() as conn:
        for id_, seen in (("h:1", 1_000.0), ("h:2", 2_000.0)):
            worker_rows.beat(conn, worker_rows.Worker(id_, "ingest", 900.0, seen, {"x": 1.0}))
        worker_rows.beat(conn, worker_rows.Worker("h:1", "ingest", 900.0, 2_500.0, {"x": 2.0}))
        assert [(w.id, w.figures) for w in worker_rows.recent(conn, 1_500.0)] == [
            ("h:1", {"x": 2.0}),
            ("h:2", {"x": 1.0}),
        ]
        assert worker_rows.forget(conn, 2_200.0) == 1
        assert [w.id for w in worker_rows.recent(conn, 0.0)] == ["h:1"]
