"""The leader role's gap resends: `core.storegaps` over what the store holds, every few
seconds (PostgreSQL; the `all` role tracks seqs as they arrive, `core.seqs`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import sqlalchemy as sa

from coordinator.core.registry import Registry
from coordinator.core.storegaps import Newest, StoreGaps, Verdict
from coordinator.daemon.live import LiveFeed
from coordinator.store import samples as sample_rows

log = logging.getLogger(__name__)
Ask = Callable[[str, int, int], Awaitable[None]]
T = TypeVar("T")
A = TypeVar("A")


class GapScan:
    def __init__(
        self,
        engine: sa.Engine,
        registry: Registry,
        feed: LiveFeed,
        gaps: StoreGaps,
        ask: Ask,
    ) -> None:
        self._engine, self._registry, self._feed = engine, registry, feed
        self.gaps, self._ask = gaps, ask

    async def scan(self, now: float) -> None:
        newest = {
            name: Newest(
                int(v.latest["seq"]),
                self._feed.streams.get(name, 0),
                float(v.latest["ts"]),
                v.last_seen or now,
            )
            for name, v in self._registry.nodes.items()
            if v.latest.get("seq") is not None
        }
        marks = self.gaps.plan(newest, now)
        await self._old_streams()
        if not marks:
            return
        found = await asyncio.to_thread(self._read, sample_rows.found_above, marks)
        holey = [
            m for m in marks if m.node in found and not self.gaps.contiguous(m.node, found[m.node])
        ]
        if not holey:
            return
        seqs = await asyncio.to_thread(self._read, sample_rows.seqs_above, holey)
        for mark in holey:
            await self._act(self.gaps.judge(mark.node, seqs[mark.node]))

    async def _old_streams(self) -> None:
        """Earlier streams' holes (kept across a stream reset): what the store holds of them."""
        wanted = self.gaps.old_ranges()
        if not wanted:
            return
        held = await asyncio.to_thread(self._read, sample_rows.stored_ranges, wanted)
        for node in sorted({node for node, _, _ in wanted}):
            await self._act(self.gaps.judge_old(node, sorted(held.get(node, []))))

    async def _act(self, verdict: Verdict) -> None:
        for gap in verdict.ask:
            await self._ask(*gap)
        for node, first, last in verdict.unanswered:
            log.warning(
                "seqs %d..%d of %s: asked for %d times with no answer; still asked for, less often",
                first,
                last,
                node,
                self.gaps.max_attempts,
            )

    def _read(self, query: Callable[[sa.Connection, list[A]], T], items: list[A]) -> T:
        with self._engine.connect() as conn:
            return query(conn, items)
