"""Batches telemetry into transactions; holds it (bounded) while the database is down.

When the buffer is full, `put` waits, so the MQTT task stops reading and the broker queues
for the coordinator's persistent session rather than anything being dropped here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

import sqlalchemy as sa

from coordinator.core.lag import LagStats
from coordinator.settings import CoordinatorConfig
from coordinator.store import samples as sample_rows
from shared.backoff import Backoff
from shared.clock import Clock
from shared.messages import TelemetryBatch

log = logging.getLogger(__name__)


class Writer:
    """Batches telemetry into transactions; holds it (bounded) while the database is down."""

    def __init__(self, engine: sa.Engine, config: CoordinatorConfig, clock: Clock) -> None:
        self._engine, self._config, self._clock = engine, config, clock
        self._pending: deque[tuple[float, TelemetryBatch]] = deque()
        self.buffered = 0
        self.stored = 0
        self.lag = LagStats()
        self._arrived = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._full_logged = False

    async def put(self, batch: TelemetryBatch) -> None:
        """Queue a batch; waits (so the caller stops reading the broker) while full."""
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
        self._pending.append((time.monotonic(), batch))
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
            try:
                await asyncio.to_thread(self.flush)
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
            if failing:
                log.warning("database writes resumed")
            failing = False
            backoff.reset()

    def flush(self) -> None:
        batches = [b for _, b in self._pending]
        count = len(self._pending)
        if not batches:
            self._arrived.clear()
            return
        with self._engine.begin() as conn:
            sample_rows.insert_batches(conn, batches)
        committed = self._clock.now()
        self.lag.add(committed - s.ts for b in batches for s in b.samples)
        for _ in range(count):
            self._pending.popleft()
        written = sum(len(b.samples) for b in batches)
        self.stored += written
        self.buffered -= written
        if not self._pending:
            self._arrived.clear()
        if self.buffered < self._config.max_buffered_samples:
            self._full_logged = False
            self._space.set()
