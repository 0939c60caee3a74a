"""The store on SQLite and PostgreSQL: migrations, dedupe, nodes, rollups, retention, history."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from coordinator.core import aggregates, chunks
from coordinator.core.live import Live
from coordinator.core.nodestate import NodeState
from coordinator.core.registry import NodeView
from coordinator.core.rollups import counter, gauge
from coordinator.core.series import SeriesQuery
from coordinator.store import leadership as leader_rows
from coordinator.store import live as live_rows
from coordinator.store import models, retention
from coordinator.store import nodes as node_rows
from coordinator.store import rollups as rollup_rows
from coordinator.store import samples as sample_rows
from coordinator.store import series as series_rows
from coordinator.store import stats as stat_rows
from coordinator.store import workers as worker_rows
from coordinator.store.engine import (
    alembic_config,
    create_engine,
    current_revision,
    head_revision,
    upgrade,
)
from coordinator.store.models import Base, raw_chunks, rollup_dirty, rollup_hour, rollup_minute
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


def stored(conn) -> int:
    """Samples held in the raw tier."""
    query = sa.select(sa.func.sum(raw_chunks.c.seq_last - raw_chunks.c.seq_first + 1))
    return int(conn.execute(query).scalar() or 0)


def rolled(conn, table, node: str, metric: str, gpu: int = -1) -> dict[float, np.ndarray]:
    """bucket -> (count, value, min, max) of one metric (a GPU's entry) of a node."""
    found = {}
    query = sa.select(table.c.bucket, table.c.gpus, table.c[metric]).where(table.c.node == node)
    for bucket, gpus, blob in conn.execute(query):
        if blob is not None:
            values = aggregates.unpack(blob)
            found[bucket] = values[0 if gpu < 0 else tuple(gpus).index(gpu)]
    return found


def roll_all(conn, before: float) -> int:
    done = 0
    while n := rollup_rows.roll_up(conn, before, max_gap_s=30.0):
        done += n
    return done


def without_none(sample: Sample) -> Sample:
    """What the store gives back: an absent value and a None are the same."""
    return Sample(
        ts=sample.ts,
        metrics={k: v for k, v in sample.metrics.items() if v is not None},
        gpus=tuple(
            GpuSample(
                index=g.index,
                uuid=g.uuid,
                metrics={k: v for k, v in g.metrics.items() if v is not None},
            )
            for g in sample.gpus
        ),
    )


def not_a_partition(name, kind, _parent) -> bool:
    """A day partition (or its indexes) is the store's own, not the models'."""
    return not (name and re.search(r"_(default|p\d+)(_|$)", name))


def test_migrations_reach_head_and_match_the_models(engine):
    assert current_revision(engine) == head_revision() == "0016"
    script = ScriptDirectory.from_config(alembic_config())  # head_revision reads file names
    assert script.get_heads() == [head_revision()]
    assert all(r.revision == r.path.split("/")[-1][:4] for r in script.walk_revisions())
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": not_a_partition})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], "models and migrations differ: add a migration"
    assert upgrade(engine) == "0016"  # idempotent


def test_redelivered_samples_are_stored_once(engine):
    first = batch("n1", 0, [(T0 + i, 10.0, 100.0 + i) for i in range(5)])
    with engine.begin() as conn:
        sample_rows.insert_batches(conn, [first])
        sample_rows.insert_batches(conn, [first, batch("n1", 3, [(T0 + 3, 10.0, 103.0)] * 4)])
    with engine.connect() as conn:
        assert stored(conn) == 7
        assert sample_rows.stored_high(conn) == {"n1": 6}


def test_a_restart_finds_the_holes_in_each_nodes_last_seqs(engine):
    """What a restarted coordinator asks for again: holes between stored chunks in the last
    `RESTART_LOOKBACK` seqs, not the seqs below the window nor below a node's first chunk."""
    top = 10_000
    pieces = [("n1", 100, 5), ("n1", top - 30, 5), ("n1", top - 20, 3), ("n1", top - 10, 11)]
    pieces += [("n2", 0, 4), ("n2", 4, 4)]  # contiguous
    with engine.begin() as conn:
        for node, first, count in pieces:
            points = [(T0 + first + i, 10.0, 100.0) for i in range(count)]
            sample_rows.insert_batches(conn, [batch(node, first, points)])
    with engine.connect() as conn:
        assert sample_rows.holes(conn) == {"n1": [(top - 25, top - 21), (top - 17, top - 11)]}


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
        done = roll_all(conn, before=T0 + 3600)
    assert done == 3 + 1
    with engine.connect() as conn:
        cpu = rolled(conn, rollup_minute, "n1", "cpu_util_pct")
        energy = rolled(conn, rollup_minute, "n1", "rapl_package_energy_j")
        hour_cpu = rolled(conn, rollup_hour, "n1", "cpu_util_pct")[T0]
        hour_energy = rolled(conn, rollup_hour, "n1", "rapl_package_energy_j")[T0]
        gpu_hour = rolled(conn, rollup_hour, "n1", "gpu_util_pct", gpu=0)[T0]
        assert conn.execute(sa.select(sa.func.count()).select_from(rollup_dirty)).scalar() == 0
    for minute in range(3):
        start = T0 + 60 * minute
        inside = [p for p in points if start <= p[0] < start + 60]
        before = [p for p in points if p[0] < start]
        expected = gauge([p[1] for p in inside])
        assert tuple(cpu[start]) == pytest.approx(
            (expected.count, expected.avg, expected.min, expected.max)
        )
        previous = before[-1][2] if before else None
        assert energy[start][1] == pytest.approx(counter(previous, [p[2] for p in inside]).delta)
    assert tuple(hour_cpu[:2]) == pytest.approx((90, sum(p[1] for p in points) / 90))
    assert hour_energy[1] == pytest.approx(counter(None, [p[2] for p in points]).delta)
    assert gpu_hour[1] == pytest.approx(sum(p[1] / 2 for p in points) / 90)


def test_late_samples_recompute_their_minute(engine):
    with engine.begin() as conn:
        sample_rows.insert_batches(conn, [batch("n1", 0, [(T0 + 1, 10.0, 1.0)])])
        roll_all(conn, before=T0 + 600)
        sample_rows.insert_batches(conn, [batch("n1", 1, [(T0 + 2, 30.0, 2.0)])])  # a resent gap
        roll_all(conn, before=T0 + 600)
        row = rolled(conn, rollup_minute, "n1", "cpu_util_pct")[T0]
    assert tuple(row[:2]) == (2, 20.0)


def test_minutes_still_open_are_not_rolled_up(engine):
    with engine.begin() as conn:
        sample_rows.insert_batches(conn, [batch("n1", 0, [(T0 + 1, 10.0, 1.0)])])
        assert rollup_rows.roll_up(conn, T0 + 59, 30.0) == 0
        assert rollup_rows.roll_up(conn, T0 + 60, 30.0) == 1


def test_history_from_each_tier(engine):
    points = [(T0 + 10 * i, float(i % 100), 100.0 + i) for i in range(360)]  # 1 h at 10 s
    with engine.begin() as conn:
        sample_rows.insert_batches(conn, [batch("n1", 0, points)])
        roll_all(conn, before=T0 + 1800)  # the second half stays raw
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
    with engine.begin() as conn:
        sample_rows.insert_batches(conn, [batch("n1", 0, [(T0 + i, 1.0, 1.0) for i in range(90)])])
        roll_all(conn, before=T0 + 3600 * 2)
    with engine.connect() as conn:
        assert stat_rows.store_size_bytes(conn) > 0
        assert all(retention.size_bytes(conn, tier) > 0 for tier in retention.TIERS)


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
        blocks = sample_rows.read_blocks(conn, ["n1"], 0, 2e9)["n1"]
        rows = conn.execute(sa.select(models.gpu_uuids.c.gpu_index, models.gpu_uuids.c.uuid))
        uuids = {int(i): u for i, u in rows}
    seqs = [b.seq_first + i for b in blocks for i in range(len(b.values))]
    assert seqs == list(range(10, 16))
    assert counts == [6, 0]  # what each write stored: the rest were duplicates
    back = [s for b in blocks for s in chunks.samples_of(b, uuids)]
    sent = [*batch.samples, *again.samples[2:]]
    assert back == [without_none(s) for s in sent]  # floats, integers, vectors, uuids exact


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


def test_two_writers_interleaving_one_nodes_batches_store_each_seq_once(engine, db_url):
    """Split roles on one store: two ingest workers (their own engines, so their own
    connections and transactions) given one node's batches interleaved, each with
    overlapping resends of the other's; then the rollups equal a direct aggregation."""
    if engine.dialect.name != "postgresql":
        pytest.skip("split roles need PostgreSQL (SQLite has one writer)")
    points = [(T0 + i, float(i % 23), 5000.0 + 11 * i) for i in range(600)]  # 10 min at 1 s
    batches = [batch("n1", s, points[s : s + 20]) for s in range(0, 600, 20)]
    resends = [batch("n1", s, points[s : s + 30]) for s in range(10, 570, 40)]  # overlaps
    shares = [batches[0::2] + resends[1::2], batches[1::2] + resends[0::2]]

    def worker(share: list[TelemetryBatch]) -> int:
        own = create_engine(db_url)
        stored_here = 0
        try:
            for one in share:
                with own.begin() as conn:
                    stored_here += sample_rows.insert_batches(conn, [one])
        finally:
            own.dispose()
        return stored_here

    with ThreadPoolExecutor(2) as pool:
        counts = list(pool.map(worker, shares))
    assert sum(counts) == 600
    with engine.begin() as conn:
        assert stored(conn) == 600
        seqs = sorted(s for chunk in sample_rows.read_blocks(conn, ["n1"], 0, 2e9)["n1"]
                      for s in range(chunk.seq_first, chunk.seq_first + len(chunk.ts)))  # fmt: skip
        assert seqs == list(range(600))
        roll_all(conn, T0 + 3600)
        cpu = rolled(conn, rollup_minute, "n1", "cpu_util_pct")
        energy = rolled(conn, rollup_minute, "n1", "rapl_package_energy_j")
    for minute in range(10):
        start = T0 + 60 * minute
        inside = [p for p in points if start <= p[0] < start + 60]
        expected = gauge([p[1] for p in inside])
        assert tuple(cpu[start]) == pytest.approx(
            (expected.count, expected.avg, expected.min, expected.max)
        )
        before = [p[2] for p in points if p[0] < start]
        increase = counter(before[-1] if before else None, [p[2] for p in inside]).delta
        assert energy[start][1] == pytest.approx(increase)


async def test_the_leaders_live_feed_touches_the_registry_only_on_the_event_loop(engine):
    """The leader crashed with "Set changed size during iteration": the feed's worker thread
    added to the registry's changed-set while placement iterated it on the loop. Now the
    thread only reads the store; every registry call happens on the loop's own thread."""
    from coordinator.core.registry import Registry  # noqa: PLC0415
    from coordinator.daemon.live import LiveFeed  # noqa: PLC0415
    from shared.clock import SystemClock  # noqa: PLC0415
    from shared.edge.tasks import Stopping  # noqa: PLC0415

    stopping = Stopping()
    callers: list[int] = []

    class Spy(Registry):
        def on_live(self, *args, **kwargs):
            callers.append(threading.get_ident())
            stopping.request()  # one pass is enough
            return super().on_live(*args, **kwargs)

    with engine.begin() as conn:
        live_rows.write_live(conn, [Live("n1", time.time(), 5, 0, {"seq": 5, "ts": factories.TS})])
    feed = LiveFeed(engine, Spy(offline_after_s=30.0), SystemClock(), stopping)
    await feed.run()
    assert callers == [threading.get_ident()]
    assert feed.streams == {"n1": 0}


@pytest.mark.parametrize("hours_done", [True, False])  # the newest hour rolled up, or not yet
def test_report_usage_reads_hours_and_minutes_where_no_hour_is(engine, hours_done):
    """100 W at 10 s from half past T0 for two hours: every step's energy is counted once,
    from hour rows where they exist and minute rows for the rest (both dialects' reads)."""
    from coordinator.store.usage import load_usage  # noqa: PLC0415

    start, stop = T0 + 1800, T0 + 9000
    samples = [
        Sample(ts=ts, metrics={"power_w": 100.0}) for ts in np.arange(start, stop, 10.0).tolist()
    ]
    with engine.begin() as conn:
        sample_rows.insert_batches(
            conn, [TelemetryBatch(node="n1", seq_first=0, samples=tuple(samples))]
        )
        roll_all(conn, before=T0 + 4 * 3600 if hours_done else stop + 60)
        hours = conn.execute(sa.select(sa.func.count()).select_from(rollup_hour)).scalar()
        (used,) = load_usage(conn, start, T0 + 3 * 3600)
    assert hours == (3 if hours_done else 2)
    assert used.buckets.energy_j.sum() == pytest.approx((len(samples) - 1) * 10 * 100.0)
    assert used.buckets.awake_s.sum() == pytest.approx((len(samples) - 1) * 10)
    assert list(used.buckets.start) == sorted(used.buckets.start)
    assert used.buckets.power_n.sum() == len(samples)
