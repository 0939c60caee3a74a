"""Once a second: the systemd watchdog, nodes gone silent, gap resends due again (or given
up), node rows and GPU health events to the store; every few seconds the coordinator's
figures for `dormouse status` and this process's own row (`coordinator_workers`).

An ingest worker sees only its share of each node's telemetry, so it never marks a node
offline; the leader role finds gaps in the store (`GapScan`) instead of in its stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import sqlalchemy as sa

from coordinator.core.ingest import Ingest
from coordinator.daemon.gap_scan import GapScan
from coordinator.daemon.leadership import Leadership
from coordinator.daemon.receiver import Receiver
from coordinator.settings import ROLE_ALL, ROLE_INGEST
from coordinator.store import drains as drain_rows
from coordinator.store import nodes as node_rows
from coordinator.store import stats as stat_rows
from coordinator.store import workers as worker_rows
from shared.clock import Clock
from shared.edge.notify import Notifier
from shared.edge.tasks import Stopping

log = logging.getLogger(__name__)
STATS_EVERY = 5  # ticks
GAP_SCAN_EVERY = 5  # ticks
FORGET_WORKERS_S = 86400.0
FORGETS_LOOKBACK_S = 60.0  # a forget asked from a host whose clock is behind is still read
KEEP_FORGETS_S = 86400.0


class Housekeeping:
    def __init__(
        self,
        *,
        engine: sa.Engine,
        ingest: Ingest,
        receiver: Receiver,
        notifier: Notifier,
        clock: Clock,
        offline_after_s: float,
        stats: Callable[[], dict[str, float]],
        stopping: Stopping,
        leadership: Leadership,
        role: str = ROLE_ALL,
        gap_scan: GapScan | None = None,
    ) -> None:
        self._engine, self._ingest, self._receiver = engine, ingest, receiver
        self._notifier, self._clock, self._offline_after_s = notifier, clock, offline_after_s
        self._stats, self._stopping, self._leadership = stats, stopping, leadership
        self._role, self._gap_scan = role, gap_scan
        self._started = clock.now()
        self._forgets_read = self._started  # older forgets are in the store it loaded

    async def run(self) -> None:
        tick = 0
        while not self._stopping.requested:  # a cancel a resend swallowed (3.11) ends it too
            await asyncio.sleep(1.0)
            self._notifier.watchdog()  # a stuck event loop stops this, and systemd restarts it
            tick += 1
            now = self._clock.now()
            if self._role != ROLE_INGEST:
                self._expire(now)
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                await self._forgets(now, tick)
            if tick % STATS_EVERY == 0:
                with contextlib.suppress(sa.exc.SQLAlchemyError):
                    await asyncio.to_thread(self._beat, now)
            if not self._leadership.leading.is_set():
                continue  # a standby: the leader asks for gaps and writes node rows and stats
            await self._gaps(now, tick)
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                await asyncio.to_thread(self.persist_nodes)
                if tick % STATS_EVERY == 0:
                    await asyncio.to_thread(self._write_stats, now)

    async def _forgets(self, now: float, tick: int) -> None:
        """`dormouse nodes forget`, asked through the store: the nodes leave this process's
        memory (every role keeps its own); the leader deletes a row its own last save may
        have written back, and notes older than a day."""
        since = self._forgets_read - FORGETS_LOOKBACK_S

        def read() -> list[tuple[str, float]]:
            with self._engine.connect() as conn:
                return node_rows.forgets_since(conn, since)

        asked = await asyncio.to_thread(read)
        dropped = [name for name, at in asked if self._ingest.registry.forget(name, at)]
        for name in dropped:
            log.info("forgot node %s (`dormouse nodes forget`)", name)
        if asked:
            self._forgets_read = max(self._forgets_read, asked[-1][1])
        purge = tick % STATS_EVERY == 0
        if not self._leadership.leading.is_set() or not (dropped or purge):
            return  # most ticks: nothing to write

        def write() -> None:
            with self._engine.begin() as conn:
                node_rows.drop_rows(conn, dropped)
                if purge:
                    node_rows.purge_forgets(conn, now - KEEP_FORGETS_S)

        await asyncio.to_thread(write)

    def _expire(self, now: float) -> None:
        for node in self._ingest.registry.expire(now):
            log.warning("node %s is offline: no telemetry for %gs", node, self._offline_after_s)

    async def _gaps(self, now: float, tick: int) -> None:
        if self._gap_scan is not None:
            if tick % GAP_SCAN_EVERY == 0:
                with contextlib.suppress(sa.exc.SQLAlchemyError):
                    await self._gap_scan.scan(now)
            return
        again, unanswered = self._ingest.seqs.due(now)
        for gap in again:
            await self._receiver.ask_resend(*gap)
        for node, first, last in unanswered:
            log.warning(
                "seqs %d..%d of %s: asked for again and again with no answer; still asked "
                "for, less often",
                first,
                last,
                node,
            )

    def persist_nodes(self) -> None:
        """Changed node rows and the GPU health changes seen, in one transaction; a store
        outage keeps both for the next try."""
        registry = self._ingest.registry
        changed = registry.take_changed()
        health = list(registry.health_changes)
        if not changed and not health:
            return
        try:
            with self._engine.begin() as conn:
                node_rows.save_nodes(conn, changed)
                drain_rows.record_health(conn, health)
        except sa.exc.SQLAlchemyError:
            registry.changed.update(v.name for v in changed)
            raise
        del registry.health_changes[: len(health)]
        for change in health:
            why = f" ({change.reason})" if change.reason else ""
            log.warning("node %s GPU %d: %s%s", change.node, change.gpu_index, change.kind, why)

    def _beat(self, now: float) -> None:
        """This process's row: its role and figures, for `dormouse status`'s workers."""
        row = worker_rows.Worker(
            self._leadership.holder, self._role, self._started, now, self._stats()
        )
        with self._engine.begin() as conn:
            worker_rows.beat(conn, row)
            worker_rows.forget(conn, now - FORGET_WORKERS_S)

    def _write_stats(self, now: float) -> None:
        with self._engine.begin() as conn:
            stat_rows.write_stats(conn, self._stats(), now)
