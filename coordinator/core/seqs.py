"""Which seqs of each node the store holds, and which to ask an agent for again. Pure.

The store, not the broker session, is the source of truth: the tracker starts from the
highest stored seq of each node, and every batch that jumps past `high + 1` opens a gap to be
requested with a `resend`. A gap not filled after `retry_s` is asked for again, up to
`max_attempts` times; then it is given up (the agent's spool no longer has it) and reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Gap:
    first: int
    last: int
    asked_at: float
    attempts: int = 1


@dataclass
class NodeSeqs:
    high: int  # highest seq seen; -1 before any
    gaps: list[Gap] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Observation:
    new_gap: tuple[int, int] | None  # ask for this range now
    duplicates: int  # samples of the batch the store already had


class SeqTracker:
    def __init__(
        self, stored_high: dict[str, int], *, retry_s: float = 30.0, max_attempts: int = 5
    ) -> None:
        self._nodes = {node: NodeSeqs(high) for node, high in stored_high.items()}
        self._retry_s, self._max_attempts = retry_s, max_attempts
        self.lost_seqs = 0  # given up on: the agent did not resend them

    def observe(self, node: str, first: int, last: int, now: float) -> Observation:
        seqs = self._nodes.setdefault(node, NodeSeqs(-1))
        gap = None
        if first > seqs.high + 1:
            gap = (seqs.high + 1, first - 1)
            seqs.gaps.append(Gap(gap[0], gap[1], asked_at=now))
        filled = self._fill(seqs, first, min(last, seqs.high))
        overlap = max(0, min(last, seqs.high) - first + 1)
        seqs.high = max(seqs.high, last)
        return Observation(new_gap=gap, duplicates=overlap - filled)

    @staticmethod
    def _fill(seqs: NodeSeqs, first: int, last: int) -> int:
        """Remove [first, last] from the node's gaps; the number of seqs that were missing."""
        if last < first:
            return 0
        filled, kept = 0, []
        for gap in seqs.gaps:
            lo, hi = max(gap.first, first), min(gap.last, last)
            if lo > hi:
                kept.append(gap)
                continue
            filled += hi - lo + 1
            if gap.first < lo:
                kept.append(Gap(gap.first, lo - 1, gap.asked_at, gap.attempts))
            if hi < gap.last:
                kept.append(Gap(hi + 1, gap.last, gap.asked_at, gap.attempts))
        seqs.gaps = kept
        return filled

    def due(self, now: float) -> tuple[list[tuple[str, int, int]], list[tuple[str, int, int]]]:
        """(ranges to ask for again, ranges given up as lost)."""
        again, lost = [], []
        for node, seqs in self._nodes.items():
            kept = []
            for gap in seqs.gaps:
                if now - gap.asked_at < self._retry_s:
                    kept.append(gap)
                elif gap.attempts >= self._max_attempts:
                    lost.append((node, gap.first, gap.last))
                    self.lost_seqs += gap.last - gap.first + 1
                else:
                    gap.asked_at, gap.attempts = now, gap.attempts + 1
                    again.append((node, gap.first, gap.last))
                    kept.append(gap)
            seqs.gaps = kept
        return again, lost

    def missing(self, node: str) -> int:
        seqs = self._nodes.get(node)
        return sum(g.last - g.first + 1 for g in seqs.gaps) if seqs else 0
