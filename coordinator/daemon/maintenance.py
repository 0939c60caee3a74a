"""Rollups and retention, every `rollup_interval`: finished minutes and hours are rolled up,
the next days' partitions made, then each tier loses what it no longer keeps (whole days
dropped, the rest in bounded batches by index)."""

from __future__ import annotations

import asyncio
import logging

import sqlalchemy as sa

from coordinator.daemon.leadership import Leadership
from coordinator.settings import CoordinatorConfig
from coordinator.store import retention
from coordinator.store import rollups as rollup_rows
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
        """Roll up finished minutes and hours, then delete what each tier no longer keeps."""
        before = now - self._config.rollup_grace
        while True:
            with self._engine.begin() as conn:
                if rollup_rows.roll_up(conn, before, self._config.offline_after) == 0:
                    break
        keep = self._config.retention
        with self._engine.begin() as conn:
            for tier in (retention.RAW, retention.MINUTES):
                retention.ensure_partitions(
                    conn, tier, now - retention.DAY, now + retention.DAYS_AHEAD * retention.DAY
                )
        for tier, keep_s in (
            (retention.RAW, keep.raw),
            (retention.MINUTES, keep.minute),
            (retention.HOURS, keep.hour),
        ):
            while True:
                with self._engine.begin() as conn:
                    if retention.expire(conn, tier, now - keep_s, keep.delete_batch) == 0:
                        break
