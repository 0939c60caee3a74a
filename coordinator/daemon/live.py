"""How a leader that reads no telemetry still knows the fleet: each ingest worker writes,
with its samples, a digest of every node's newest batch (`core.live`, table `node_live`),
and the leader's `LiveFeed` reads the rows that moved into its registry once a second."""

from __future__ import annotations

import asyncio
import logging

import sqlalchemy as sa

from coordinator.core.live import Live
from coordinator.core.registry import Registry
from coordinator.store import live as live_rows
from shared.clock import Clock
from shared.edge.tasks import Stopping

log = logging.getLogger(__name__)
LOOKBACK_S = 3.0  # rows are stamped when written, committed (and visible) a little later


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
        """The store is read in a worker thread; the registry is touched only here, on the
        event loop, which also iterates it (placement, power): never from two threads."""
        while not self._stopping.requested:
            await asyncio.sleep(1.0)
            try:
                rows = await asyncio.to_thread(self.fetch)
            except sa.exc.SQLAlchemyError as exc:
                log.warning("node_live: cannot read the store (%s)", exc.__class__.__name__)
                continue
            self.apply(rows)

    def fetch(self) -> list[Live]:
        """The digests stored since the last read (blocking SQL: a worker thread's part)."""
        with self._engine.connect() as conn:
            return live_rows.read_live(conn, self._since - LOOKBACK_S)

    def apply(self, rows: list[Live]) -> int:
        """Into the registry: call on the thread that owns it (the event loop's)."""
        now = self._clock.now()
        for row in rows:
            self._registry.on_live(row.node, row.seen_at, row.latest, now)
            self.streams[row.node] = row.stream_first
            self._since = max(self._since, row.seen_at)
        return len(rows)
