"""The coordinator's own figures: what `dormouse status` and `/metrics` show of it."""

from __future__ import annotations

from dataclasses import dataclass

from coordinator.core.ingest import Ingest
from coordinator.core.storegaps import StoreGaps
from coordinator.daemon.dispatch import Dispatcher
from coordinator.daemon.power_loop import PowerLoop
from coordinator.daemon.receiver import Receiver
from coordinator.daemon.writer import Writer
from coordinator.services.jobs import HELD_NO_KEY


@dataclass(frozen=True, slots=True)
class Figures:
    ingest: Ingest
    writer: Writer
    receiver: Receiver
    dispatcher: Dispatcher
    power: PowerLoop
    gaps: StoreGaps | None = None  # the leader role's (else the ingest's seq tracker counts)

    def collect(self) -> dict[str, float]:
        lag = self.writer.lag.quantiles()
        resends = self.gaps or self.ingest.seqs  # whoever finds the gaps counts them
        values: dict[str, float] = {
            "samples_stored": self.writer.stored,
            "samples_buffered": self.writer.buffered,
            "duplicates": self.ingest.duplicates + self.writer.duplicates,
            "resends_sent": self.receiver.resends_sent,
            "resend_retries": resends.retries,
            "gaps_given_up": resends.given_up,
            "jobs_placed": self.dispatcher.placed,
            "jobs_held_for_tariff": len(self.dispatcher.last.held),
            HELD_NO_KEY: float(self.dispatcher.held is not None),
            **{f"power_{k}": v for k, v in sorted(self.power.counts.items())},
            "seqs_lost": resends.lost_seqs,
            "stream_resets": self.gaps.stream_resets if self.gaps else self.ingest.stream_resets,
            "lag_p50_s": lag[0.5],
            "lag_p90_s": lag[0.9],
            "lag_p99_s": lag[0.99],
        }
        values |= {f"received_{k}": v for k, v in self.ingest.received.items()}
        values |= {f"dropped_{k}": v for k, v in self.ingest.dropped.items()}
        return values
