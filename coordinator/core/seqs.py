"""Which seqs of each node the store holds, and which to ask an agent for again. Pure.

The store, not the broker session, is the source of truth: the tracker starts from the
highest stored seq of each node (and the holes a restart finds below it), and every batch
that jumps past `high + 1` opens a gap to be requested with a `resend`.

Resends follow the coordinator's own progress, not the wall clock. While it is behind (the
live batches it files were stamped more than `catch_up_s` ago, beyond the node's usual
delay), a resend would queue behind its own backlog, so none is asked for and no deadline
runs: deadlines run on a served clock that moves only while caught-up live batches are being
filed (or while nothing arrives at all for `catch_up_s`: a quiet fleet after an overload is
not a backlog). A gap is asked for again every `retry_s` of served time; after `max_attempts` it is
`unanswered` (asked only every `max_attempts` retries from then on, still missing, still
taken if it comes) but never counted lost on the clock's word. A gap is lost only when the
agent says it no longer holds those seqs (`gone`): `lost_seqs` is exactly what the store
lacks and will not get. Seqs given up that arrive after all are stored (and no longer
counted lost), never filed as duplicates.

Streams: a batch names the first seq of its agent's spool (`stream_first`). One above
everything stored is a new spool: nothing between the old stream's high and the new start is
asked for (those seqs were never used), but any of them that still arrive (the old process's
last batches, delivered late) are taken, and the old stream's gaps stay asked for (its spool
may survive; the agent says what it no longer holds). So one batch, forged or real, cannot
make a node's other samples duplicates. Only the parts of a batch not stored yet are
`fresh`; a batch that jumps more than `max_jump` past where its stream stands is refused and
moves nothing, so a forged seq near 2**63 cannot swallow the node's future.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class Gap:
    first: int
    last: int
    asked_at: float  # on the served clock
    attempts: int = 1  # 0: opened while behind, not asked for yet


@dataclass
class Open:
    """Seqs not stored and not asked for, taken if they arrive: given up on the agent's word
    (`lost`, counted), or the unused tail of an old stream (not counted)."""

    first: int
    last: int
    lost: bool


@dataclass
class NodeSeqs:
    high: int  # highest seq seen; -1 before any
    gaps: list[Gap] = field(default_factory=list)
    open: list[Open] = field(default_factory=list)
    delay: float | None = None  # the least delay seen of its live batches (clock skew included)


Range = tuple[int, int]
MAX_JUMP = 10_000_000  # seqs a batch may skip past its stream's high (~4 months at 1 Hz)
CATCH_UP_S = 15.0  # live batches filed later than this past the node's usual delay: behind
MAX_OPEN = 64  # open ranges kept per node (the oldest forgotten first)


@dataclass(frozen=True, slots=True)
class Observation:
    new_gap: Range | None = None  # ask for this range now
    duplicates: int = 0  # samples of the batch the store already had
    fresh: tuple[Range, ...] = ()  # the parts of the batch to store
    reset_from: int | None = None  # a new stream began here (the old spool was lost)
    carried: int = 0  # the old stream's missing seqs, still asked for
    refused: str | None = None  # why the batch is refused (nothing was changed)


class SeqTracker:
    def __init__(
        self,
        stored_high: dict[str, int],
        *,
        holes: dict[str, list[Range]] | None = None,
        retry_s: float = 30.0,
        max_attempts: int = 5,
        max_jump: int = MAX_JUMP,
        catch_up_s: float = CATCH_UP_S,
    ) -> None:
        self._nodes = {node: NodeSeqs(high) for node, high in stored_high.items()}
        for node, ranges in (holes or {}).items():
            self._nodes.setdefault(node, NodeSeqs(max(b for _, b in ranges)))
            self._nodes[node].gaps += [Gap(a, b, 0.0, attempts=0) for a, b in ranges]
        self._retry_s, self._max_attempts, self._max_jump = retry_s, max_attempts, max_jump
        self._catch_up_s = catch_up_s
        self.lost_seqs = 0  # the agents said they no longer hold these
        self.given_up = 0  # gaps (or parts) the agents said they no longer hold
        self.retries = 0  # asks after the first for the same gap
        self.recovered = 0  # seqs given up that arrived after all
        self.unanswered = 0  # gaps asked `max_attempts` times with no answer (still asked)
        self.behind = False  # the newest live batch came later than `catch_up_s`
        self.served = 0.0  # the served clock: moves only while caught up and filing
        self._filed = False  # a caught-up live batch was filed since the last `due`
        self._due_at: float | None = None
        self._seen_at: float | None = None  # when the last batch (any) was observed

    def observe(
        self,
        node: str,
        first: int,
        last: int,
        now: float,
        stream_first: int = 0,
        *,
        stamp: float | None = None,
    ) -> Observation:
        """A batch of seqs first..last whose newest sample is stamped `stamp`."""
        self._seen_at = now
        seqs = self._nodes.get(node) or NodeSeqs(-1)
        new_stream = stream_first > seqs.high
        floor = stream_first if new_stream else seqs.high + 1
        if first - floor > self._max_jump:
            return Observation(refused="seq_jump")
        self._nodes[node] = seqs
        reset = new_stream and seqs.high >= 0
        if reset and stream_first > seqs.high + 1:
            self._keep_open(seqs, Open(seqs.high + 1, stream_first - 1, lost=False))
        if last > seqs.high and stamp is not None:
            self._progress(seqs, now - stamp)
        gap = None
        if first > floor:
            asked = not self.behind
            seqs.gaps.append(Gap(floor, first - 1, self.served, attempts=int(asked)))
            gap = (floor, first - 1) if asked else None
        fresh = self._fresh(seqs, first, last)
        filled = self._fill(seqs, first, min(last, seqs.high))
        overlap = max(0, min(last, seqs.high) - first + 1)
        seqs.high = max(seqs.high, last)
        return Observation(
            new_gap=gap,
            duplicates=overlap - filled,
            fresh=fresh,
            reset_from=stream_first if reset else None,
            carried=self.missing(node) if reset else 0,
        )

    def _progress(self, seqs: NodeSeqs, delay: float) -> None:
        """Behind or caught up, from a live batch's delay beyond its node's least (which
        holds the node's clock skew and its publish interval)."""
        seqs.delay = delay if seqs.delay is None else min(seqs.delay, delay)
        self.behind = delay - seqs.delay > self._catch_up_s
        self._filed = self._filed or not self.behind

    def gone(self, node: str, first: int, last: int) -> int:
        """The agent says it no longer holds [first, last]: what of it was missing is lost
        (and taken after all if it still comes). Returns the seqs given up."""
        seqs = self._nodes.get(node)
        if seqs is None:
            return 0
        missing = within(seqs.gaps, first, last)
        self._cut(seqs, first, last)
        lost = sum(b - a + 1 for a, b in missing)
        for a, b in missing:
            self._keep_open(seqs, Open(a, b, lost=True))
        self.lost_seqs += lost
        self.given_up += len(missing)
        return lost

    def _keep_open(self, seqs: NodeSeqs, gap: Open) -> None:
        seqs.open.append(gap)
        del seqs.open[:-MAX_OPEN]

    @staticmethod
    def _fresh(seqs: NodeSeqs, first: int, last: int) -> tuple[Range, ...]:
        """The parts of [first, last] the store lacks: in a gap, open, or past the high."""
        held = [(g.first, g.last) for g in seqs.gaps] + [(o.first, o.last) for o in seqs.open]
        parts = [(max(a, first), min(b, last)) for a, b in held]
        parts.append((max(first, seqs.high + 1), last))
        merged: list[Range] = []
        for lo, hi in sorted(p for p in parts if p[0] <= p[1]):
            if merged and lo <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        return tuple(merged)

    def _fill(self, seqs: NodeSeqs, first: int, last: int) -> int:
        """Remove [first, last] from the node's gaps and open ranges; the number of seqs
        that were missing."""
        if last < first:
            return 0
        came = [
            (max(o.first, first), min(o.last, last), o.lost)
            for o in seqs.open
            if o.first <= last and first <= o.last
        ]
        recovered = sum(b - a + 1 for a, b, lost in came if lost)
        self.lost_seqs -= recovered
        self.recovered += recovered
        return self._cut(seqs, first, last) + sum(b - a + 1 for a, b, _ in came)

    @staticmethod
    def _cut(seqs: NodeSeqs, first: int, last: int) -> int:
        """Take [first, last] out of the gaps and open ranges; the seqs taken from gaps."""
        taken, gaps, opened = 0, [], []
        for gap in seqs.gaps:
            lo, hi = max(gap.first, first), min(gap.last, last)
            if lo > hi:
                gaps.append(gap)
                continue
            taken += hi - lo + 1
            if gap.first < lo:
                gaps.append(Gap(gap.first, lo - 1, gap.asked_at, gap.attempts))
            if hi < gap.last:
                gaps.append(Gap(hi + 1, gap.last, gap.asked_at, gap.attempts))
        for o in seqs.open:
            if o.last < first or last < o.first:
                opened.append(o)
                continue
            if o.first < first:
                opened.append(Open(o.first, first - 1, o.lost))
            if last < o.last:
                opened.append(Open(last + 1, o.last, o.lost))
        seqs.gaps, seqs.open = gaps, opened
        return taken

    def due(self, now: float) -> tuple[list[GapRange], list[GapRange]]:
        """(ranges to ask for now, ranges asked `max_attempts` times with no answer, from
        now on asked only every `max_attempts` retries). Nothing while behind; the served
        clock moves only across calls between which caught-up live batches were filed."""
        idle = self._seen_at is None or now - self._seen_at >= self._catch_up_s
        if idle:  # nothing at all arrives: no backlog is being worked through
            self.behind = False
        if self._due_at is not None and (self._filed or idle):
            self.served += now - self._due_at
        self._due_at, self._filed = now, False
        if self.behind:
            return [], []
        again, unanswered = [], []
        for node, seqs in self._nodes.items():
            for gap in seqs.gaps:
                slow = gap.attempts > self._max_attempts
                wait = self._retry_s * (self._max_attempts if slow else 1)
                if gap.attempts and self.served - gap.asked_at < wait:
                    continue
                if gap.attempts == self._max_attempts:
                    self.unanswered += 1
                    unanswered.append((node, gap.first, gap.last))
                self.retries += gap.attempts > 0
                gap.asked_at, gap.attempts = self.served, gap.attempts + 1
                again.append((node, gap.first, gap.last))
        return again, unanswered

    def missing(self, node: str) -> int:
        seqs = self._nodes.get(node)
        return sum(g.last - g.first + 1 for g in seqs.gaps) if seqs else 0


def within(gaps: list[Gap], first: int, last: int) -> list[Range]:
    """The parts of `gaps` inside [first, last]."""
    return [
        (max(g.first, first), min(g.last, last))
        for g in gaps
        if g.first <= last and first <= g.last
    ]


GapRange = tuple[str, int, int]  # (node, first seq, last seq)


class Seqs(Protocol):
    """What ingest asks of a seq view: the tracker, or an ingest worker's `Untracked`."""

    lost_seqs: int
    given_up: int
    retries: int

    def observe(
        self,
        node: str,
        first: int,
        last: int,
        now: float,
        stream_first: int = 0,
        *,
        stamp: float | None = None,
    ) -> Observation: ...

    def gone(self, node: str, first: int, last: int) -> int: ...

    def due(self, now: float) -> tuple[list[GapRange], list[GapRange]]: ...

    def missing(self, node: str) -> int: ...


class Untracked:
    """An ingest worker's view. With a shared subscription a worker sees only its share of
    each node's batches, so a jump in seqs is usually another worker's batch, not a gap: it
    stores every batch whole, the store's (node, seq) key drops what is there already, and
    the leader finds real gaps in the store (`core.storegaps`)."""

    lost_seqs = given_up = retries = 0

    def observe(
        self,
        node: str,
        first: int,
        last: int,
        now: float,
        stream_first: int = 0,
        *,
        stamp: float | None = None,
    ) -> Observation:
        return Observation(fresh=((first, last),))

    def gone(self, node: str, first: int, last: int) -> int:
        return 0  # the leader's gap scan hears the agents' answers

    def due(self, now: float) -> tuple[list[GapRange], list[GapRange]]:
        return [], []

    def missing(self, node: str) -> int:
        return 0
