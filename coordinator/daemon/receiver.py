"""What happens to each message the broker hands over: decode and route (`core.ingest`),
count energy, queue telemetry for the writer, ask agents to resend gaps, and pass job and
power reports on. A bad message is counted and logged (rate-limited), never raised."""

from __future__ import annotations

import logging

from coordinator.core.ingest import Ingest, Reset, Routed
from coordinator.core.ratelimit import RateLimiter
from coordinator.daemon.commands import Sender
from coordinator.daemon.dispatch import Dispatcher
from coordinator.daemon.leadership import Leadership
from coordinator.daemon.power_loop import PowerLoop
from coordinator.daemon.writer import Ack, Writer
from coordinator.power.energy import EnergyMeter
from shared.clock import Clock
from shared.messages import Resend

log = logging.getLogger(__name__)


class Receiver:
    def __init__(
        self,
        *,
        ingest: Ingest,
        writer: Writer,
        energy: EnergyMeter,
        sender: Sender,
        dispatcher: Dispatcher,
        power: PowerLoop,
        clock: Clock,
        leadership: Leadership,
    ) -> None:
        self.ingest, self._writer, self._energy, self._sender = ingest, writer, energy, sender
        self._dispatcher, self._power, self._clock = dispatcher, power, clock
        self._leadership = leadership
        self._drop_log = RateLimiter(10.0)
        self.resends_sent = 0

    async def handle(self, topic: str, payload: bytes, ack: Ack | None = None) -> None:
        """`ack` tells the broker the message is done: telemetry once the writer has
        committed it, anything else once handled here (a dropped message at once)."""
        dropped_before = self.ingest.dropped.total()
        now = self._clock.now()
        routed = self.ingest.handle(topic, payload, now)
        if self.ingest.dropped.total() != dropped_before:
            self._log_drop(now)
        for i, batch in enumerate(routed.batches, start=1):
            self._energy.add(batch.node, ((s.ts, s.metrics.get("power_w")) for s in batch.samples))
            await self._writer.put(batch, ack if i == len(routed.batches) else None)
        await self._route(routed, now)
        if ack is not None and not routed.batches:
            ack()

    async def _route(self, routed: Routed, now: float) -> None:
        if routed.reset is not None:
            self._stream_reset(routed.reset, now)
        if routed.gone is not None and routed.gone.lost:
            gone = routed.gone
            log.error(
                "seqs %d..%d of %s are lost: the agent no longer holds them (%d were missing)",
                gone.first,
                gone.last,
                gone.node,
                gone.lost,
            )
        if routed.gap is not None:
            await self.ask_resend(*routed.gap)
        if routed.event is not None and routed.event.job_id is None:
            if self._leadership.leading.is_set():  # the power log is the leader's to write
                self._power.on_event(routed.event, now)
        elif routed.event is not None:
            await self._dispatcher.on_event(routed.event)

    def _stream_reset(self, reset: Reset, now: float) -> None:
        why = (
            f"new sample stream from seq {reset.stream_first} (its spool was lost or "
            f"replaced, or the agent stopped uncleanly); {reset.carried} missing seqs of "
            "the old one still asked for"
        )
        log.warning("node %s: %s", reset.node, why)
        if self._leadership.leading.is_set():
            self._power.note(now, reset.node, "stream_reset", why)

    def _log_drop(self, now: float) -> None:
        reason = next(reversed(self.ingest.last_error))  # the reason just counted
        covered = self._drop_log.allow(reason, now)
        if covered is not None:
            log.warning(
                "dropped %d message(s) (%s) since the last line; latest: %s",
                covered,
                reason,
                self.ingest.last_error[reason],
            )

    async def ask_resend(self, node: str, first: int, last: int) -> None:
        if await self._sender.send(node, Resend(from_seq=first, to_seq=last)):
            self.resends_sent += 1
            log.info("asked %s to resend seqs %d..%d", node, first, last)
