"""From MQTT message to facts, pure: decode, check, count, update the registry and seq
tracker.

A bad message is dropped and counted by reason; it never raises and never reaches the store.
Beyond the schema (`Limits`): a node must say hello before anything else it sends is taken,
and no more than `max_nodes` are known (forged names cannot grow memory or the nodes table);
a batch stamped in the future past `max_skew_s` or older than `max_age_s` is not stored and
claims no seq (a crafted batch cannot move a node's watermark or stream); seqs or a stream
start ahead of the samples' own stamps, and a seq jump past the tracker's bound, are
refused; only the seqs the store lacks are written.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from coordinator.core.registry import Registry
from coordinator.core.seqs import Range, Seqs
from shared.codec import decode
from shared.errors import DecodeError, TopicError
from shared.messages import Event, Hello, Status, TelemetryBatch
from shared.topics import parse_topic


@dataclass(frozen=True, slots=True)
class Limits:
    max_skew_s: float = 300.0  # samples stamped further ahead of our clock are refused
    max_age_s: float = 7 * 86400.0  # and older ones (raw retention would delete them)
    max_nodes: int = 20_000


@dataclass(frozen=True, slots=True)
class Reset:
    """A node's agent began a new sample stream (its spool was lost or replaced, or it
    stopped uncleanly)."""

    node: str
    stream_first: int
    carried: int  # seqs of the old stream still missing, still asked for


@dataclass(frozen=True, slots=True)
class Gone:
    """An agent no longer holds seqs `first..last` it was asked to resend."""

    node: str
    first: int
    last: int
    lost: int  # of them, seqs the store lacked: now given up


@dataclass(frozen=True, slots=True)
class Routed:
    batches: tuple[TelemetryBatch, ...] = ()  # to store: only seqs the store lacks
    gap: tuple[str, int, int] | None = None  # (node, from_seq, to_seq) to ask for
    event: Event | None = None  # a job or sleep report, for the dispatcher
    reset: Reset | None = None
    gone: Gone | None = None


class Ingest:
    def __init__(
        self,
        registry: Registry,
        seqs: Seqs,
        limits: Limits | None = None,
        gone: Callable[[str, int, int], int] | None = None,
    ) -> None:
        """`gone`: who hears the agents' `seqs_gone` answers (the seq tracker, or the
        leader's store gap scan)."""
        self.registry, self.seqs = registry, seqs
        self._gone = gone or seqs.gone
        self.limits = limits or Limits()
        self.received: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.duplicates = 0
        self.stream_resets = 0
        self.last_error: dict[str, str] = {}
        self._refused: OrderedDict[str, Hello] = OrderedDict()  # hellos max_nodes turned away

    def handle(self, topic: str, payload: bytes, now: float) -> Routed:
        try:
            parsed = parse_topic(topic)
            message = decode(payload, parsed.kind, parsed.node)
        except (TopicError, DecodeError) as exc:
            return self._drop(exc.reason, f"{topic[:120]}: {exc}")
        if not isinstance(message, TelemetryBatch | Hello | Status | Event):
            return self._drop("unexpected", f"{topic[:120]}: a command on an agent topic")
        refusal = self._unknown(message, now)
        if refusal is not None:
            return self._drop(refusal, f"{topic[:120]}: {REFUSALS[refusal]}")
        self.received[parsed.kind.value] += 1
        if isinstance(message, TelemetryBatch):
            return self._telemetry(message, now)
        if isinstance(message, Hello):
            self.registry.on_hello(message, now)
        elif isinstance(message, Status):
            self.registry.on_status(message, now)
        else:
            return self._event(message)
        return Routed()

    def _event(self, event: Event) -> Routed:
        """A report for the dispatcher, or an agent's word on seqs it no longer holds."""
        if event.kind != "seqs_gone":
            return Routed(event=event)
        first, last = event.seq_first or 0, event.seq_last or 0  # both checked by the schema
        return Routed(gone=Gone(event.node, first, last, self._gone(event.node, first, last)))

    def _drop(self, reason: str, detail: str, count: int = 1) -> Routed:
        self.dropped[reason] += count
        self.last_error.pop(reason, None)  # re-insert: the newest reason comes last
        self.last_error[reason] = detail
        return Routed()

    def _unknown(self, message: TelemetryBatch | Hello | Status | Event, now: float) -> str | None:
        """Only a hello introduces a node, and only while there is room for one more. A hello
        turned away for want of room is kept (the newest `REFUSED_KEPT`): when room is made
        (`dormouse nodes forget`), the node is taken at its next message, so a real agent,
        which keeps sending, needs no restart; a forged hello, followed by nothing, stays
        out."""
        if message.node in self.registry.nodes:
            return None
        full = len(self.registry.nodes) >= self.limits.max_nodes
        if isinstance(message, Hello):
            if full:
                self._turned_away(message)
                return "max_nodes"
            self._refused.pop(message.node, None)
            return None
        kept = self._refused.get(message.node)
        if kept is None or full:
            return "unknown_node"
        del self._refused[message.node]
        self.registry.on_hello(kept, now)
        return None

    def _turned_away(self, hello: Hello) -> None:
        self._refused.pop(hello.node, None)
        self._refused[hello.node] = hello
        while len(self._refused) > REFUSED_KEPT:
            self._refused.popitem(last=False)

    def _telemetry(self, batch: TelemetryBatch, now: float) -> Routed:
        where = f"{batch.node}: seqs {batch.seq_first}..{batch.seq_last}"
        stamped = self._stamp_refusal(batch, now)
        if stamped is not None:  # before the seqs: a refused batch claims none of them
            detail = f"{where}: stamped {batch.samples[0].ts:.0f}, now {now:.0f}"
            return self._drop(stamped, detail, len(batch.samples))
        if not self._plausible_stream(batch):
            return self._drop("seq_jump", f"{where}: seqs or stream ahead of their samples")
        seen = self.seqs.observe(
            batch.node,
            batch.seq_first,
            batch.seq_last,
            now,
            batch.stream_first,
            stamp=batch.samples[-1].ts,
        )
        if seen.refused is not None:
            return self._drop(seen.refused, f"{where}: too far past the node's last seq")
        reused = self._reused(batch, seen.fresh)
        self.duplicates += seen.duplicates - reused
        if reused:
            self._drop("seq_reused", f"{where}: newer than the node's highest seq", reused)
        gap = (batch.node, *seen.new_gap) if seen.new_gap else None
        reset = None
        if seen.reset_from is not None:
            self.stream_resets += 1
            reset = Reset(batch.node, seen.reset_from, seen.carried)
        self.registry.on_telemetry(batch, now)
        return Routed(batches=fresh_parts(batch, seen.fresh), gap=gap, reset=reset)

    def _reused(self, batch: TelemetryBatch, fresh: tuple[Range, ...]) -> int:
        """Samples at seqs already stored but newer than the sample at the node's highest
        seq: not a redelivery but an agent numbering again (its host clock set back under
        a new spool, or a restart while its disk was full). They cannot be stored under
        those seqs; counted as `seq_reused` so the loss is seen, not filed as duplicates."""
        latest = self.registry.nodes[batch.node].latest
        high, newest = latest.get("seq"), latest.get("ts")
        if high is None or newest is None or batch.seq_first > high:
            return 0
        stored = [
            s for i, s in enumerate(batch.samples)
            if batch.seq_first + i <= high
            and not any(lo <= batch.seq_first + i <= hi for lo, hi in fresh)
        ]  # fmt: skip
        return sum(1 for s in stored if s.ts > newest)

    def _plausible_stream(self, batch: TelemetryBatch) -> bool:
        """A stream starts at the agent's clock in ms when its spool was made, and numbers
        at most one sample a millisecond from there: neither its start nor any seq can be
        ahead of the sample's own stamp in ms (checked against our clock first), so a forged
        seq near 2**63 would need a year far ahead. The same check in every role."""
        skew_ms = self.limits.max_skew_s * 1000
        return (
            batch.stream_first <= batch.samples[0].ts * 1000 + skew_ms
            and batch.seq_last <= batch.samples[-1].ts * 1000 + skew_ms
        )

    def _stamp_refusal(self, batch: TelemetryBatch, now: float) -> str | None:
        stamps = [s.ts for s in batch.samples]
        if max(stamps) > now + self.limits.max_skew_s:
            return "future_ts"
        if min(stamps) < now - self.limits.max_age_s:
            return "too_old"
        return None


REFUSED_KEPT = 1024  # hellos turned away for max_nodes, kept to take their nodes later

REFUSALS = {
    "unknown_node": "no hello from this node yet",
    "max_nodes": "max_nodes reached: a new node is not taken",
}


def fresh_parts(batch: TelemetryBatch, fresh: tuple[Range, ...]) -> tuple[TelemetryBatch, ...]:
    """The batch cut to the seq ranges the store lacks (each a contiguous batch)."""
    if fresh == ((batch.seq_first, batch.seq_last),):
        return (batch,)
    return tuple(
        dataclasses.replace(
            batch,
            seq_first=lo,
            samples=batch.samples[lo - batch.seq_first : hi - batch.seq_first + 1],
            spool_dropped=batch.spool_dropped if i == 0 else 0,
        )
        for i, (lo, hi) in enumerate(fresh)
    )
