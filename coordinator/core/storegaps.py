"""Gaps found in the store, not in one process's stream (pure): the leader role's resends.

With a shared subscription a node's batches land on different ingest workers, so no
process sees a node's whole stream; what the store holds is the truth. Per node the leader
keeps a watermark (every seq at or below it is stored, or given up) and looks only above
it: seqs settled in time (stamped `settle_s` before the node's newest known sample) that
are missing are asked for again, every `retry_s`, up to `max_attempts` times, then given
up and counted. The scan is bounded by the watermark: a healthy node costs one index range
of its last few seconds; `plan` says which nodes to scan and from where.

A node's agent that starts a new stream (its spool lost) starts far above the old one:
nothing below the new stream's first seq is asked for, and what was still open of the old
one is given up with it (as `core.seqs` does).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from coordinator.core.seqs import Gap, GapRange, Range

LOOKBACK_SEQS = 300  # a new leader checks each node's last 300 seqs (5 min at 1 Hz)
SETTLE_S = 10.0  # a seq is missing once samples stamped this much later are stored


@dataclass(frozen=True, slots=True)
class Mark:
    """Scan `node` above seq `above`, among samples stamped at or before `horizon`."""

    node: str
    above: int
    horizon: float


@dataclass(frozen=True, slots=True)
class Newest:
    """A node's newest batch as the leader knows it."""

    seq: int  # its last seq
    stream: int  # the agent's stream (spool) it belongs to
    ts: float  # its newest sample's stamp (the agent's clock)
    seen_at: float  # when a worker stored it (the coordinators' clock)


@dataclass(frozen=True, slots=True)
class Found:
    """What the store holds of a node above its mark: count and highest seq."""

    count: int
    high: int


@dataclass
class Verdict:
    ask: list[GapRange] = field(default_factory=list)  # to request now
    lost: list[GapRange] = field(default_factory=list)  # given up


@dataclass
class NodeMark:
    mark: int  # every seq <= mark is stored or given up
    stream: int  # the agent's current stream's first seq
    gaps: list[Gap] = field(default_factory=list)  # asked for, not yet seen stored


class StoreGaps:
    def __init__(
        self, *, retry_s: float = 30.0, max_attempts: int = 5, settle_s: float = SETTLE_S
    ) -> None:
        self._retry_s, self._max_attempts, self._settle_s = retry_s, max_attempts, settle_s
        self.nodes: dict[str, NodeMark] = {}
        self.lost_seqs = 0
        self.given_up = 0  # gaps abandoned after max_attempts
        self.retries = 0  # asks after the first for the same gap
        self.stream_resets = 0

    def plan(self, newest: dict[str, Newest], now: float) -> list[Mark]:
        """Marks to scan, from what is known of each node's newest batch; a node seen for the
        first time starts `LOOKBACK_SEQS` below its newest seq. Samples are settled once
        later ones are stored `settle_s` after them, or once the node has been quiet that
        long (a node that stops sending, asleep or gone, still has its last holes asked for)."""
        marks = []
        for node, last in sorted(newest.items()):
            known = self.nodes.get(node)
            if known is None:
                start = max(last.seq - LOOKBACK_SEQS, last.stream - 1)
                known = self.nodes[node] = NodeMark(start, last.stream)
            elif last.stream > known.stream:
                self._new_stream(known, last.stream)
            if last.seq > known.mark:
                quiet = now - last.seen_at >= self._settle_s
                marks.append(Mark(node, known.mark, last.ts - (0 if quiet else self._settle_s)))
        return marks

    def _new_stream(self, known: NodeMark, stream: int) -> None:
        abandoned = sum(g.last - g.first + 1 for g in known.gaps)
        self.lost_seqs += abandoned
        self.stream_resets += 1
        known.gaps, known.stream, known.mark = [], stream, max(known.mark, stream - 1)

    def contiguous(self, node: str, found: Found) -> bool:
        """True (and the mark moved up) when nothing is missing up to `found.high`."""
        known = self.nodes[node]
        if found.count < found.high - known.mark:
            return False
        known.mark, known.gaps = found.high, []
        return True

    def judge(self, node: str, seqs: list[int], now: float) -> Verdict:
        """The node's stored seqs above its mark (sorted): ask for, or give up, each hole."""
        known, verdict = self.nodes[node], Verdict()
        holes = missing(known.mark, seqs)
        kept = []
        for first, last in holes:
            gap = self._carried(known, first, last, now)
            if now - gap.asked_at < self._retry_s and gap.attempts > 0:
                kept.append(gap)
            elif gap.attempts >= self._max_attempts:
                verdict.lost.append((node, first, last))
                self.lost_seqs += last - first + 1
                self.given_up += 1
            else:
                self.retries += gap.attempts > 0
                gap.asked_at, gap.attempts = now, gap.attempts + 1
                verdict.ask.append((node, first, last))
                kept.append(gap)
        known.gaps = kept
        known.mark = kept[0].first - 1 if kept else (seqs[-1] if seqs else known.mark)
        return verdict

    @staticmethod
    def _carried(known: NodeMark, first: int, last: int, now: float) -> Gap:
        """The hole as asked before (its attempts carry over), or a new one."""
        before = [g for g in known.gaps if g.first <= last and first <= g.last]
        if not before:
            return Gap(first, last, asked_at=now, attempts=0)
        oldest = max(before, key=lambda g: g.attempts)
        return Gap(first, last, asked_at=oldest.asked_at, attempts=oldest.attempts)

    def missing(self, node: str) -> int:
        known = self.nodes.get(node)
        return sum(g.last - g.first + 1 for g in known.gaps) if known else 0


def missing(mark: int, seqs: list[int]) -> list[Range]:
    """The holes between `mark` and the highest of `seqs` (sorted, all above mark)."""
    holes, expected = [], mark + 1
    for seq in seqs:
        if seq > expected:
            holes.append((expected, seq - 1))
        expected = max(expected, seq + 1)
    return holes
