"""How a leader that reads no telemetry still knows the fleet: each ingest worker writes,
with its samples, a digest of every node's newest batch (`node_live`), and the leader's
`LiveFeed` reads the rows that moved into its registry once a second.

A node's row is written at most every `every_s` (`offline_after / 3`: a node alive is all
the leader needs then), at once when its GPU health or sample stream changes: at 10,000
nodes x 1 Hz and the default 10 s that is 1,000 upserts a second beside 10,000 sample rows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import sqlalchemy as sa

from coordinator.core.registry import Registry, summarise
from coordinator.store import live as live_rows
from coordinator.store.live import Live
from shared.clock import Clock
from shared.edge.tasks import Stopping
from shared.messages import TelemetryBatch

log = logging.getLogger(__name__)
LOOKBACK_S = 3.0  # rows are stamped by their worker's clock, committed a little later


class Digest:
    """Which nodes' rows an ingest worker writes with this flush (pure)."""

    def __init__(self, every_s: float) -> None:
        self._every_s = every_s
        self._written: dict[str, tuple[float, int, object]] = {}

    def rows(self, batches: Sequence[TelemetryBatch], now: float) -> list[Live]:
        newest: dict[str, TelemetryBatch] = {}
        for batch in batches:
            kept = newest.get(batch.node)
            if kept is None or batch.seq_last > kept.seq_last:
                newest[batch.node] = batch
        rows = []
        for node, batch in newest.items():
            latest = summarise(batch)
            written = self._written.get(node)
            if written is None or self._due(written, batch, latest, now):
                rows.append(Live(node, now, batch.seq_last, batch.stream_first, latest))
        return rows

    def _due(
        self, written: tuple[float, int, object], batch: TelemetryBatch, latest: dict, now: float
    ) -> bool:
        at, stream, health = written
        changed = stream != batch.stream_first or health != latest["gpu_health"]
        return changed or now - at >= self._every_s

    def written(self, rows: Sequence[Live]) -> None:
        """After the commit: what the leader can now read."""
        for row in rows:
            self._written[row.node] = (row.seen_at, row.stream_first, row.latest["gpu_health"])


class LiveFeed:
    """The leader role's telemetry: the digests the workers stored, into the registry."""

    def __init__(
        self, engine: sa.Engine, registry: Registry, clock: Clock, stopping: Stopping
    ) -> None:
        self._engine, self._registry, self._clock = engine, registry, clock
        self._stopping = stopping
        self._since = 0.0
        self.streams: dict[str, int] = {}  # each node's current stream, for the gap scan

    async def run(self) -> None:
        while not self._stopping.requested:
            await asyncio.sleep(1.0)
            try:
                await asyncio.to_thread(self.read)
            except sa.exc.SQLAlchemyError as exc:
                log.warning("node_live: cannot read the store (%s)", exc.__class__.__name__)

    def read(self) -> int:
        with self._engine.connect() as conn:
            rows = live_rows.read_live(conn, self._since - LOOKBACK_S)
        now = self._clock.now()
        for row in rows:
            self._registry.on_live(row.node, row.seen_at, row.latest, now)
            self.streams[row.node] = row.stream_first
            self._since = max(self._since, row.seen_at)
        return len(rows)
