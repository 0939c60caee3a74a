"""Batches telemetry into transactions; holds it (bounded) while the database is down.

Each batch may come with an `ack`: called only once its samples are committed, so the
broker is told a message is done only when losing this process can no longer lose it.
When the buffer is full, `put` waits, so the MQTT task stops reading; unacknowledged, the
broker sends no more than its receive maximum and queues the rest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

import sqlalchemy as sa

from coordinator.core.lag import LagStats
from coordinator.core.live import Digest
from coordinator.settings import CoordinatorConfig
from coordinator.store import live as live_rows
from coordinator.store import samples as sample_rows
from shared.backoff import Backoff
from shared.clock import Clock
from shared.messages import TelemetryBatch

log = logging.getLogger(__name__)
Ack = Callable[[], None]
Pending = tuple[float, TelemetryBatch, Ack | None]  # (queued at, batch, its ack)


class Writer:
    """Batches telemetry into transactions; holds it (bounded) while the database is down."""

    def __init__(
        self,
        engine: sa.Engine,
        config: CoordinatorConfig,
        clock: Clock,
        digest: Digest | None = None,
    ) -> None:
        self._engine, self._config, self._clock = engine, config, clock
        self._digest = digest  # an ingest worker's: the leader's view, with each flush
        self._pending: deque[Pending] = deque()
        self.buffered = 0
        self.stored = 0
        self.duplicates = 0  # offered samples the store already held
        self.lag = LagStats()
        self._arrived = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._full_logged = False

    async def put(self, batch: TelemetryBatch, ack: Ack | None = None) -> None:
        """Queue a batch (`ack` is called once it is committed); waits (so the caller stops
        reading the broker) while full."""
        if self.buffered >= self._config.max_buffered_samples:
            if not self._full_logged:
                log.error(
                    "store buffer full (%d samples): not taking more from the broker "
                    "until the database accepts writes",
                    self.buffered,
                )
                self._full_logged = True
            self._space.clear()
            await self._space.wait()
        self._pending.append((time.monotonic(), batch, ack))
        self.buffered += len(batch.samples)
        self._arrived.set()

    async def run(self) -> None:
        backoff = Backoff(initial_s=0.5, max_s=10.0)
        failing = False
        while True:
            await self._arrived.wait()
            oldest = self._pending[0][0]
            wait_s = oldest + self._config.flush_interval - time.monotonic()
            if self.buffered < self._config.flush_samples and wait_s > 0:
                await asyncio.sleep(wait_s)
            taken = list(self._pending)  # in the loop: `put` appends only here
            try:
                stored = await asyncio.to_thread(self._write, taken)
            except sa.exc.SQLAlchemyError as exc:
                if not failing:
                    log.error(
                        "database write failed, holding %d samples and retrying: %s",
                        self.buffered,
                        exc.__class__.__name__,
                    )
                failing = True
                await asyncio.sleep(backoff.next_delay())
                continue
            for ack in self._settle(taken, stored):
                ack()
            if failing:
                log.warning("database writes resumed")
            failing = False
            backoff.reset()

    def flush(self) -> list[Ack]:
        """Write what is pending in one transaction, from the event loop's thread (the
        last flush at a stop); the acks now due (the caller sends them)."""
        taken = list(self._pending)
        return self._settle(taken, self._write(taken))

    def _write(self, taken: list[Pending]) -> int:
        """The database part, in a worker thread: it reads only `taken`, a copy made in the
        event loop, never the queue `put` appends to. Returns the samples stored."""
        batches = [b for _, b, _ in taken]
        if not batches:
            return 0
        live = self._digest.rows(batches, self._clock.now()) if self._digest else []
        with self._engine.begin() as conn:
            stored = sample_rows.insert_batches(conn, batches)
            live_rows.write_live(conn, live)
        if self._digest:
            self._digest.written(live)
        return stored

    def _settle(self, taken: list[Pending], stored: int) -> list[Ack]:
        """Back in the event loop: drop what was written from the queue, count it, and
        hand back the acks now due."""
        committed = self._clock.now()
        self.lag.add(committed - s.ts for _, b, _ in taken for s in b.samples)
        for _ in taken:
            self._pending.popleft()
        written = sum(len(b.samples) for _, b, _ in taken)
        self.stored += stored
        self.duplicates += written - stored
        self.buffered -= written
        if not self._pending:
            self._arrived.clear()
        if self.buffered < self._config.max_buffered_samples:
            self._full_logged = False
            self._space.set()
        return [ack for _, _, ack in taken if ack]
