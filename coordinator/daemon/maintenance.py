"""Rollups and retention, every `rollup_interval`: finished minutes and hours are rolled up,
then each tier loses what it no longer keeps, in bounded batches."""

from __future__ import annotations

import asyncio
import logging

import sqlalchemy as sa

from coordinator.daemon.leadership import Leadership
from coordinator.settings import CoordinatorConfig
from coordinator.store import rollups as rollup_rows
from coordinator.store.models import gpu_samples, rollup_hour, rollup_minute, samples
from shared.clock import Clock

log = logging.getLogger(__name__)


class Maintenance:
    def __init__(
        self, engine: sa.Engine, config: CoordinatorConfig, clock: Clock, leadership: Leadership
    ) -> None:
        self._engine, self._config, self._clock = engine, config, clock
        self._leadership = leadership

    async def run(self) -> None:
        while True:
            await self._leadership.leading.wait()  # one process rolls up and deletes
            try:
                await asyncio.to_thread(self.maintain, self._clock.now())
            except sa.exc.SQLAlchemyError as exc:
                log.warning("rollups/retention postponed: %s", exc.__class__.__name__)
            await asyncio.sleep(self._config.rollup_interval)

    def maintain(self, now: float) -> None:
        """Roll up finished minutes, then delete what each tier no longer keeps."""
        while True:
            with self._engine.begin() as conn:
                if rollup_rows.roll_up(conn, before=now - self._config.rollup_grace) == 0:
                    break
        keep = self._config.retention
        for table, keep_s in (
            (samples, keep.raw),
            (gpu_samples, keep.raw),
            (rollup_minute, keep.minute),
            (rollup_hour, keep.hour),
        ):
            while True:
                with self._engine.begin() as conn:
                    if rollup_rows.delete_before(conn, table, now - keep_s, keep.delete_batch) == 0:
                        break
