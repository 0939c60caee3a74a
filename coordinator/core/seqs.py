"""Which seqs of each node the store holds, and which to ask an agent for again. Pure.

The store, not the broker session, is the source of truth: the tracker starts from the
highest stored seq of each node, and every batch that jumps past `high + 1` opens a gap to be
requested with a `resend`. A gap not filled after `retry_s` is asked for again, up to
`max_attempts` times; then it is given up (the agent's spool no longer has it) and reported.

Streams: a batch names the first seq of its agent's spool (`stream_first`). One above
everything stored is a new spool (the old one was lost): the old stream's open gaps are
given up at once (nothing can resend them), nothing below the new start is asked for, and
the reset is reported. Only the parts of a batch not stored yet are `fresh` (to write); a
batch that jumps more than `max_jump` past where its stream stands is refused, and moves
nothing, so a forged seq near 2**63 cannot swallow the node's future.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


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


Range = tuple[int, int]
MAX_JUMP = 10_000_000  # seqs a batch may skip past its stream's high (~4 months at 1 Hz)


@dataclass(frozen=True, slots=True)
class Observation:
    new_gap: Range | None = None  # ask for this range now
    duplicates: int = 0  # samples of the batch the store already had
    fresh: tuple[Range, ...] = ()  # the parts of the batch to store
    reset_from: int | None = None  # a new stream began here (the old spool was lost)
    abandoned: int = 0  # the old stream's missing seqs, given up with it
    refused: str | None = None  # why the batch is refused (nothing was changed)


class SeqTracker:
    def __init__(
        self,
        stored_high: dict[str, int],
        *,
        retry_s: float = 30.0,
        max_attempts: int = 5,
        max_jump: int = MAX_JUMP,
    ) -> None:
        self._nodes = {node: NodeSeqs(high) for node, high in stored_high.items()}
        self._retry_s, self._max_attempts, self._max_jump = retry_s, max_attempts, max_jump
        self.lost_seqs = 0  # given up on: the agent did not resend them
        self.given_up = 0  # gaps given up after max_attempts
        self.retries = 0  # asks after the first for the same gap

    def observe(
        self, node: str, first: int, last: int, now: float, stream_first: int = 0
    ) -> Observation:
        seqs = self._nodes.get(node) or NodeSeqs(-1)
        new_stream = stream_first > seqs.high
        floor = stream_first if new_stream else seqs.high + 1
        if first - floor > self._max_jump:
            return Observation(refused="seq_jump")
        self._nodes[node] = seqs
        reset = new_stream and seqs.high >= 0
        abandoned = self._abandon(seqs) if reset else 0
        gap = None
        if first > floor:
            gap = (floor, first - 1)
            seqs.gaps.append(Gap(gap[0], gap[1], asked_at=now))
        fresh = self._fresh(seqs, first, last)
        filled = self._fill(seqs, first, min(last, seqs.high))
        overlap = max(0, min(last, seqs.high) - first + 1)
        seqs.high = max(seqs.high, last)
        return Observation(
            new_gap=gap,
            duplicates=overlap - filled,
            fresh=fresh,
            reset_from=stream_first if reset else None,
            abandoned=abandoned,
        )

    def _abandon(self, seqs: NodeSeqs) -> int:
        """The old stream's gaps: its spool is gone, so nothing can fill them."""
        missing = sum(g.last - g.first + 1 for g in seqs.gaps)
        seqs.gaps = []
        self.lost_seqs += missing
        return missing

    @staticmethod
    def _fresh(seqs: NodeSeqs, first: int, last: int) -> tuple[Range, ...]:
        """The parts of [first, last] the store lacks: inside a gap, or past the high."""
        parts = [(max(g.first, first), min(g.last, last)) for g in seqs.gaps]
        parts.append((max(first, seqs.high + 1), last))
        merged: list[Range] = []
        for lo, hi in sorted(p for p in parts if p[0] <= p[1]):
            if merged and lo <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        return tuple(merged)

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
                    self.given_up += 1
                else:
                    gap.asked_at, gap.attempts = now, gap.attempts + 1
                    self.retries += 1
                    again.append((node, gap.first, gap.last))
                    kept.append(gap)
            seqs.gaps = kept
        return again, lost

    def missing(self, node: str) -> int:
        seqs = self._nodes.get(node)
        return sum(g.last - g.first + 1 for g in seqs.gaps) if seqs else 0


GapRange = tuple[str, int, int]  # (node, first seq, last seq)


class Seqs(Protocol):
    """What ingest asks of a seq view: the tracker, or an ingest worker's `Untracked`."""

    lost_seqs: int
    given_up: int
    retries: int

    def observe(
        self, node: str, first: int, last: int, now: float, stream_first: int = 0
    ) -> Observation: ...

    def due(self, now: float) -> tuple[list[GapRange], list[GapRange]]: ...

    def missing(self, node: str) -> int: ...


class Untracked:
    """An ingest worker's view. With a shared subscription a worker sees only its share of
    each node's batches, so a jump in seqs is usually another worker's batch, not a gap: it
    stores every batch whole, the store's (node, seq) key drops what is there already, and
    the leader finds real gaps in the store (`core.storegaps`)."""

    lost_seqs = given_up = retries = 0

    def observe(
        self, node: str, first: int, last: int, now: float, stream_first: int = 0
    ) -> Observation:
        return Observation(fresh=((first, last),))

    def due(self, now: float) -> tuple[list[GapRange], list[GapRange]]:
        return [], []

    def missing(self, node: str) -> int:
        return 0
