"""Gaps found in the store, not in one process's stream (pure): the leader role's resends.

With a shared subscription a node's batches land on different ingest workers, so no
process sees a node's whole stream; what the store holds is the truth. Per node the leader
keeps a watermark (every seq at or below it is stored, or given up) and looks only above
it: seqs settled in time (stamped `settle_s` before the node's newest known sample) that
are missing are asked for again, every `retry_s`. The scan is bounded by the watermark: a
healthy node costs one index range of its last few seconds; `plan` says which nodes to scan
and from where.

Resends follow the workers' progress as `core.seqs` does: while the nodes' newest batches
reach the store more than `catch_up_s` later than usual (the median node), nothing is asked
and no deadline runs (the served clock stands still). A hole asked `max_attempts` times is
`unanswered` and asked only every `max_attempts` retries from then on; it is lost only when
the agent says it no longer holds it (`gone`), and then never asked for again.

A node's agent that starts a new stream (its spool replaced, or an unclean stop) starts far
above the old one: nothing between the old stream's seqs and the new first seq is asked
for (never used), and the old stream's open holes stay asked for (`judge_old`, against the
stored ranges that meet them) until stored or said gone, as `core.seqs` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import median

from coordinator.core.seqs import CATCH_UP_S, Gap, GapRange, Range, within

LOOKBACK_SEQS = 300  # a new leader checks each node's last 300 seqs (5 min at 1 Hz)
SETTLE_S = 10.0  # a seq is missing once samples stamped this much later are stored
MAX_GONE = 64  # ranges an agent said it no longer holds, kept per node


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
    unanswered: list[GapRange] = field(default_factory=list)  # asked max_attempts times


@dataclass
class NodeMark:
    mark: int  # every seq <= mark is stored or given up
    stream: int  # the agent's current stream's first seq
    gaps: list[Gap] = field(default_factory=list)  # asked for, not yet seen stored
    old: list[Gap] = field(default_factory=list)  # earlier streams' holes, still asked for
    gone: list[Range] = field(default_factory=list)  # the agent no longer holds these
    delay: float | None = None  # the least delay seen from its sample to the store
    seen_at: float = 0.0  # its newest batch's, as last planned


class StoreGaps:
    def __init__(
        self,
        *,
        retry_s: float = 30.0,
        max_attempts: int = 5,
        settle_s: float = SETTLE_S,
        catch_up_s: float = CATCH_UP_S,
    ) -> None:
        self._retry_s, self.max_attempts, self._settle_s = retry_s, max_attempts, settle_s
        self._catch_up_s = catch_up_s
        self.nodes: dict[str, NodeMark] = {}
        self.lost_seqs = 0
        self.given_up = 0  # holes (or parts) the agents said they no longer hold
        self.retries = 0  # asks after the first for the same gap
        self.unanswered = 0  # holes asked `max_attempts` times with no answer (still asked)
        self.stream_resets = 0
        self.behind = False
        self.served = 0.0  # moves only while the workers are caught up
        self._planned_at: float | None = None
        self._news_at = 0.0  # when a node's newest batch last moved

    def plan(self, newest: dict[str, Newest], now: float) -> list[Mark]:
        """Marks to scan, from what is known of each node's newest batch; a node seen for the
        first time starts `LOOKBACK_SEQS` below its newest seq. Samples are settled once
        later ones are stored `settle_s` after them, or once the node has been quiet that
        long (a node that stops sending, asleep or gone, still has its last holes asked for)."""
        marks, late = [], []
        for node, last in sorted(newest.items()):
            known = self.nodes.get(node)
            if known is None:
                start = max(last.seq - LOOKBACK_SEQS, last.stream - 1)
                known = self.nodes[node] = NodeMark(start, last.stream)
            elif last.stream > known.stream:
                self._new_stream(known, last.stream)
            if last.seen_at > known.seen_at:
                delay = last.seen_at - last.ts
                known.delay = delay if known.delay is None else min(known.delay, delay)
                known.seen_at = last.seen_at
                late.append(delay - known.delay)
            if last.seq > known.mark:
                quiet = now - last.seen_at >= self._settle_s
                marks.append(Mark(node, known.mark, last.ts - (0 if quiet else self._settle_s)))
        self._progress(late, now)
        return marks

    def _progress(self, late: list[float], now: float) -> None:
        """Behind while the median node's newest batch reached the store `catch_up_s` later
        than its usual; the served clock moves only across plans with caught-up news, or
        while no news at all has come for `catch_up_s` (a quiet fleet is no backlog)."""
        if late:
            self.behind = median(late) > self._catch_up_s
            self._news_at = now
        idle = now - self._news_at >= self._catch_up_s
        if idle:
            self.behind = False
        if self._planned_at is not None and ((late and not self.behind) or idle):
            self.served += now - self._planned_at
        self._planned_at = now

    def gone(self, node: str, first: int, last: int) -> int:
        """The agent says it no longer holds [first, last]: what of it was asked for is lost
        and never asked again. Returns the seqs given up."""
        known = self.nodes.get(node)
        if known is None:
            return 0
        asked = within(known.gaps + known.old, first, last)
        known.gone.append((first, last))
        del known.gone[:-MAX_GONE]
        lost = sum(b - a + 1 for a, b in asked)
        self.lost_seqs += lost
        self.given_up += len(asked)
        return lost

    def _new_stream(self, known: NodeMark, stream: int) -> None:
        """The old stream's holes are kept and asked for (below the new mark, so read by
        `judge_old`): its spool may survive, and the agent says what it no longer holds."""
        self.stream_resets += 1
        known.old = (known.old + known.gaps)[-MAX_GONE:]
        known.gaps, known.stream, known.mark = [], stream, max(known.mark, stream - 1)

    def old_ranges(self) -> list[GapRange]:
        """Earlier streams' holes, to read what the store holds of them."""
        return [(node, g.first, g.last) for node, k in self.nodes.items() for g in k.old]

    def judge_old(self, node: str, held: list[Range]) -> Verdict:
        """An earlier stream's holes against the stored ranges meeting them: what is still
        missing is asked for on the same cadence as `judge`'s holes."""
        known, verdict, kept = self.nodes[node], Verdict(), []
        for gap in known.old:
            for first, last in without((gap.first, gap.last), [*held, *known.gone]):
                piece = Gap(first, last, gap.asked_at, gap.attempts)
                kept.append(piece)
                self._ask(node, piece, verdict)
        known.old = kept
        return verdict

    def _ask(self, node: str, gap: Gap, verdict: Verdict) -> None:
        """Ask for `gap` if it is due (never while behind); after `max_attempts` asks it is
        reported unanswered and asked only every `max_attempts` retries."""
        slow = gap.attempts > self.max_attempts
        wait = self._retry_s * (self.max_attempts if slow else 1)
        if self.behind or (gap.attempts and self.served - gap.asked_at < wait):
            return
        if gap.attempts == self.max_attempts:
            self.unanswered += 1
            verdict.unanswered.append((node, gap.first, gap.last))
        self.retries += gap.attempts > 0
        gap.asked_at, gap.attempts = self.served, gap.attempts + 1
        verdict.ask.append((node, gap.first, gap.last))

    def contiguous(self, node: str, found: Found) -> bool:
        """True (and the mark moved up) when nothing is missing up to `found.high`."""
        known = self.nodes[node]
        if found.count < found.high - known.mark:
            return False
        known.mark, known.gaps = found.high, []
        return True

    def judge(self, node: str, seqs: list[int]) -> Verdict:
        """The node's stored seqs above its mark (sorted): ask for, or give up, each hole."""
        known, verdict = self.nodes[node], Verdict()
        holes = [h for hole in missing(known.mark, seqs) for h in without(hole, known.gone)]
        kept = []
        for first, last in holes:
            gap = self._carried(known, first, last, self.served)
            kept.append(gap)
            self._ask(node, gap, verdict)
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
        return sum(g.last - g.first + 1 for g in known.gaps + known.old) if known else 0


def missing(mark: int, seqs: list[int]) -> list[Range]:
    """The holes between `mark` and the highest of `seqs` (sorted, all above mark)."""
    holes, expected = [], mark + 1
    for seq in seqs:
        if seq > expected:
            holes.append((expected, seq - 1))
        expected = max(expected, seq + 1)
    return holes


def without(hole: Range, gone: list[Range]) -> list[Range]:
    """The parts of `hole` outside every range in `gone`."""
    parts = [hole]
    for lo, hi in gone:
        parts = [
            piece
            for a, b in parts
            for piece in ((a, min(b, lo - 1)), (max(a, hi + 1), b))
            if piece[0] <= piece[1]
        ]
    return parts
