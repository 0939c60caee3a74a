"""From MQTT message to facts, pure: decode, count, update the registry and seq tracker.

A bad message is dropped and counted by reason; it never raises and never reaches the store.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from coordinator.core.registry import Registry
from coordinator.core.seqs import SeqTracker
from shared.codec import decode
from shared.errors import DecodeError, TopicError
from shared.messages import Event, Hello, Status, TelemetryBatch
from shared.topics import parse_topic


@dataclass(frozen=True, slots=True)
class Routed:
    batch: TelemetryBatch | None = None  # to store
    gap: tuple[str, int, int] | None = None  # (node, from_seq, to_seq) to ask for
    event: Event | None = None  # a job or sleep report, for the dispatcher


class Ingest:
    def __init__(self, registry: Registry, seqs: SeqTracker) -> None:
        self.registry, self.seqs = registry, seqs
        self.received: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.duplicates = 0
        self.last_error: dict[str, str] = {}

    def handle(self, topic: str, payload: bytes, now: float) -> Routed:
        try:
            parsed = parse_topic(topic)
            message = decode(payload, parsed.kind, parsed.node)
        except (TopicError, DecodeError) as exc:
            self.dropped[exc.reason] += 1
            self.last_error.pop(exc.reason, None)  # re-insert: the newest reason comes last
            self.last_error[exc.reason] = f"{topic[:120]}: {exc}"
            return Routed()
        self.received[parsed.kind.value] += 1
        if isinstance(message, TelemetryBatch):
            return self._telemetry(message, now)
        if isinstance(message, Hello):
            self.registry.on_hello(message, now)
        elif isinstance(message, Status):
            self.registry.on_status(message, now)
        elif isinstance(message, Event):
            return Routed(event=message)
        else:
            self.dropped["unexpected"] += 1  # a command on an agent topic: not ours
            self.last_error.pop("unexpected", None)
            self.last_error["unexpected"] = f"{topic[:120]}: a command on an agent topic"
        return Routed()

    def _telemetry(self, batch: TelemetryBatch, now: float) -> Routed:
        self.registry.on_telemetry(batch, now)
        seen = self.seqs.observe(batch.node, batch.seq_first, batch.seq_last, now)
        self.duplicates += seen.duplicates
        gap = (batch.node, *seen.new_gap) if seen.new_gap else None
        return Routed(batch=batch, gap=gap)
