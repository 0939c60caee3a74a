"""The writer through a database outage: it holds, retries, stops taking when full, and
loses nothing. The outage is faked at the engine's edge; the store behind it is real SQLite."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
import sqlalchemy as sa

from coordinator.daemon.leadership import Leadership
from coordinator.daemon.main import build
from coordinator.daemon.maintenance import Maintenance
from coordinator.daemon.writer import Writer
from coordinator.settings import CoordinatorConfig
from coordinator.store import samples as sample_rows
from coordinator.store.engine import create_engine, upgrade
from coordinator.store.models import rollup_minute
from shared.clock import ManualClock, SystemClock
from shared.edge.tasks import Stopping
from tests import factories
from tests.integration.coordinator_support import stored_seqs


class FlakyEngine:
    """A real engine whose `begin()` fails while `down` is set, as a dead server's would."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine, self.down, self.failures = engine, False, 0

    def begin(self):
        if self.down:
            self.failures += 1
            raise sa.exc.OperationalError("INSERT", {}, ConnectionRefusedError("db down"))
        return self.engine.begin()

    def connect(self):
        return self.engine.connect()

    @property
    def dialect(self):
        return self.engine.dialect


@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'd.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        query = "SELECT coalesce(sum(seq_last - seq_first + 1), 0) FROM raw_chunks"
        return int(conn.execute(sa.text(query)).scalar_one())


async def test_outage_holds_retries_and_loses_nothing(engine):
    flaky = FlakyEngine(engine)
    config = dataclasses.replace(CoordinatorConfig(), flush_interval=0.05)
    writer = Writer(flaky, config, SystemClock())
    task = asyncio.create_task(writer.run())
    flaky.down = True
    for i in range(20):
        await writer.put(factories.telemetry(node="n1", seq_first=2 * i, count=2))
    await asyncio.sleep(1.5)
    assert flaky.failures >= 2  # it retried
    assert writer.buffered == 40
    assert count(engine) == 0
    flaky.down = False
    async with asyncio.timeout(15):
        while writer.buffered:
            await asyncio.sleep(0.05)
    task.cancel()
    assert count(engine) == 40
    assert writer.stored == 40


async def test_a_batch_is_acknowledged_only_once_committed(engine):
    flaky = FlakyEngine(engine)
    config = dataclasses.replace(CoordinatorConfig(), flush_interval=0.05)
    writer = Writer(flaky, config, SystemClock())
    task = asyncio.create_task(writer.run())
    acked: list[int] = []
    flaky.down = True
    for i in range(3):
        batch = factories.telemetry(node="n1", seq_first=2 * i, count=2)
        await writer.put(batch, lambda i=i: acked.append(i))
    await writer.put(factories.telemetry(node="n1", seq_first=0, count=2))  # no ack: QoS 0
    await asyncio.sleep(0.5)
    assert flaky.failures >= 1
    assert acked == []  # nothing is acknowledged while it could still be lost
    flaky.down = False
    async with asyncio.timeout(15):
        while writer.buffered:
            await asyncio.sleep(0.05)
    task.cancel()
    assert acked == [0, 1, 2]
    assert count(engine) == 6
    assert (writer.stored, writer.duplicates) == (6, 2)  # the store's own count


async def test_a_full_buffer_stops_taking_until_writes_resume(engine):
    flaky = FlakyEngine(engine)
    config = dataclasses.replace(CoordinatorConfig(), flush_interval=0.05, max_buffered_samples=10)
    writer = Writer(flaky, config, SystemClock())
    task = asyncio.create_task(writer.run())
    flaky.down = True
    for i in range(5):
        await writer.put(factories.telemetry(node="n1", seq_first=2 * i, count=2))
    blocked = asyncio.create_task(writer.put(factories.telemetry(node="n1", seq_first=10)))
    await asyncio.sleep(0.5)
    assert not blocked.done()  # the caller (the MQTT reader) is held back
    flaky.down = False
    async with asyncio.timeout(15):
        await blocked
        while writer.buffered:
            await asyncio.sleep(0.05)
    task.cancel()
    assert count(engine) == 12


def test_maintain_rolls_up_and_applies_retention(engine):
    clock = ManualClock(factories.TS + 30 * 86400)
    config = CoordinatorConfig()
    maintenance = Maintenance(engine, config, clock, Leadership(engine, clock, Stopping()))
    old = factories.telemetry(node="n1", seq_first=0, count=3)  # 30 days old
    fresh = dataclasses.replace(
        factories.telemetry(node="n1", seq_first=3, count=1),
        samples=(factories.sample(ts=clock.now() - 3600),),
    )
    with engine.begin() as conn:
        sample_rows.insert_batches(conn, [old, fresh])
    maintenance.maintain(clock.now())
    with engine.connect() as conn:
        minutes = conn.execute(sa.select(sa.func.count()).select_from(rollup_minute)).scalar()
    assert stored_seqs(str(engine.url), "n1") == [3]  # raw older than 7 days is gone
    assert minutes > 0  # the old minute was rolled up before its raw samples went (90 d)


async def test_stopping_during_an_outage_says_what_was_not_written(engine, caplog):
    flaky = FlakyEngine(engine)
    coordinator = build(CoordinatorConfig(), flaky)
    await coordinator.parts.writer.put(factories.telemetry(node="n1", seq_first=0, count=3))
    flaky.down = True
    coordinator.final_flush()
    assert "stopping with 3 samples unwritten" in caplog.text
    assert count(engine) == 0


async def test_batches_queued_while_a_write_runs_wait_for_the_next_one(engine, monkeypatch):
    """The write runs in a worker thread on a copy taken in the event loop: batches `put`
    while it is inside the database (an overload's steady state) are neither read by that
    write (the bench once crashed on `deque mutated during iteration`) nor acknowledged by
    it, and go in the next one."""
    inside, release = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    written: list[list[int]] = []
    insert = sample_rows.insert_batches

    def held_insert(conn, batches, *args, **kw):
        written.append([b.seq_first for b in batches])
        if len(written) == 1:
            loop.call_soon_threadsafe(inside.set)
            asyncio.run_coroutine_threadsafe(release.wait(), loop).result(timeout=10)
        return insert(conn, batches, *args, **kw)

    monkeypatch.setattr(sample_rows, "insert_batches", held_insert)
    config = dataclasses.replace(CoordinatorConfig(), flush_interval=0.01)
    writer = Writer(engine, config, SystemClock())
    acked: list[int] = []
    task = asyncio.create_task(writer.run())
    await writer.put(factories.telemetry(node="n1", seq_first=0, count=2), lambda: acked.append(0))
    await inside.wait()
    for seq in (2, 4, 6):  # while the first write is in the database
        await writer.put(
            factories.telemetry(node="n1", seq_first=seq, count=2), lambda s=seq: acked.append(s)
        )
    assert acked == []
    release.set()
    async with asyncio.timeout(10):
        while writer.buffered:
            await asyncio.sleep(0.01)
    task.cancel()
    assert written == [[0], [2, 4, 6]]
    assert acked == [0, 2, 4, 6]
    assert (writer.stored, count(engine)) == (8, 8)
