"""What an ingest worker tells the leader of each node (pure): the newest batch's digest,
and when to write it again. The leader role reads no telemetry; these rows (`node_live`)
are how it knows which nodes are alive, their latest figures, GPU health and which sample
stream (spool) their agent is on.

A node's row is written at most every `every_s` (`digest_every`: `offline_after / 3`, a
node alive is all the liveness check needs, but never less often than every 10 s: the
leader's gap scan learns a node's newest seq from it, so a longer `offline_after` must not
leave holes unasked for minutes), at once when its GPU health or sample stream changes: at
10,000 nodes x 1 Hz and 10 s that is 1,000 upserts a second beside 10,000 sample rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from coordinator.core.registry import summarise
from shared.messages import TelemetryBatch

DIGEST_MAX_S = 10.0  # the longest a node's newest seq stays unknown to the leader


def digest_every(offline_after_s: float) -> float:
    """How often a worker writes a node's digest: often enough for the liveness check and for
    the leader's gap scan (with `offline_after = "1h"` the old `offline_after / 3` left the
    leader 20 min behind a node's newest seq: a broker's dropped batches went unasked)."""
    return min(offline_after_s / 3, DIGEST_MAX_S)


@dataclass(frozen=True, slots=True)
class Live:
    node: str
    seen_at: float  # when it was stored (on PostgreSQL the server's clock, set on write)
    seq: int  # the batch's last seq
    stream_first: int
    latest: dict[str, Any]  # `core.registry.summarise` of the batch


class Digest:
    """Which nodes' rows an ingest worker writes with this flush."""

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
