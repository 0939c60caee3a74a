"""`dormouse run`: MQTT in, SQL out.

Tasks: `mqtt` (subscribe, decode through `Ingest`, ask agents to resend gaps), `writer`
(batched inserts, flushed by size or after `flush_interval`), `housekeeping` (offline
detection, node rows, gap retries, stats) and `maintenance` (rollups, retention).
A database outage keeps samples in a bounded buffer and retries; when the buffer is full the
coordinator stops reading from the broker (which queues for its persistent session) and says
so. Whatever is lost in between (a crash, an overflow) shows up as a seq gap and is asked for
again from the agent's spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque

import aiomqtt
import sqlalchemy as sa

from coordinator.core.ingest import Ingest
from coordinator.core.ratelimit import RateLimiter
from coordinator.daemon.dispatch import Dispatcher
from coordinator.daemon.power_loop import PowerService
from coordinator.power.energy import EnergyMeter
from coordinator.settings import CoordinatorConfig
from coordinator.store import nodes as node_rows
from coordinator.store import rollups as rollup_rows
from coordinator.store import samples as sample_rows
from coordinator.store import stats as stat_rows
from coordinator.store.models import gpu_samples, rollup_hour, rollup_minute, samples
from shared.backoff import Backoff
from shared.clock import Clock
from shared.codec import encode
from shared.edge.notify import (
    Notifier,  # sd_notify, shared with the agent (an adapter, not in shared/)
)
from shared.messages import Command, CommandBody, Resend, TelemetryBatch
from shared.signing import sign
from shared.topics import Kind, subscription, topic

log = logging.getLogger(__name__)
COMMAND_TTL_S = 60.0


class Writer:
    """Batches telemetry into transactions; holds it (bounded) while the database is down."""

    def __init__(self, engine: sa.Engine, config: CoordinatorConfig, clock: Clock) -> None:
        self._engine, self._config, self._clock = engine, config, clock
        self._pending: deque[tuple[float, TelemetryBatch]] = deque()
        self.buffered = 0
        self.stored = 0
        self.lags_s: deque[float] = deque(maxlen=10_000)
        self._arrived = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._full_logged = False

    async def put(self, batch: TelemetryBatch) -> None:
        """Queue a batch; waits (so the caller stops reading the broker) while full."""
        if self.buffered >= self._config.max_buffered_samples:
            if not self._full_logged:
                log.error(
                    "store buffer full (%d samples): not taking more from the broker "
                    "until the database accepts writes",
                    self.buffered,
                )
                self._full_logged = True
            self._space.clear()
            await self._space.wait()
        self._pending.append((time.monotonic(), batch))
        self.buffered += len(batch.samples)
        self._arrived.set()

    async def run(self) -> None:
        backoff = Backoff(initial_s=0.5, max_s=10.0)
        failing = False
        while True:
            await self._arrived.wait()
            oldest = self._pending[0][0]
            wait_s = oldest + self._config.flush_interval - time.monotonic()
            if self.buffered < self._config.flush_samples and wait_s > 0:
                await asyncio.sleep(wait_s)
            try:
                await asyncio.to_thread(self.flush)
            except sa.exc.SQLAlchemyError as exc:
                if not failing:
                    log.error(
                        "database write failed, holding %d samples and retrying: %s",
                        self.buffered,
                        exc.__class__.__name__,
                    )
                failing = True
                await asyncio.sleep(backoff.next_delay())
                continue
            if failing:
                log.warning("database writes resumed")
            failing = False
            backoff.reset()

    def flush(self) -> None:
        batches = [b for _, b in self._pending]
        count = len(self._pending)
        if not batches:
            self._arrived.clear()
            return
        with self._engine.begin() as conn:
            sample_rows.insert_batches(conn, batches)
        committed = self._clock.now()
        self.lags_s.extend(committed - s.ts for b in batches for s in b.samples)
        for _ in range(count):
            self._pending.popleft()
        written = sum(len(b.samples) for b in batches)
        self.stored += written
        self.buffered -= written
        if not self._pending:
            self._arrived.clear()
        if self.buffered < self._config.max_buffered_samples:
            self._full_logged = False
            self._space.set()


class Coordinator:
    def __init__(
        self,
        config: CoordinatorConfig,
        *,
        engine: sa.Engine,
        ingest: Ingest,
        clock: Clock,
        key: bytes | None,
        notifier: Notifier | None = None,
    ) -> None:
        self.config, self.engine, self.ingest, self.clock = config, engine, ingest, clock
        self.writer = Writer(engine, config, clock)
        self._key = key
        self._notifier = notifier or Notifier(env={})
        self.energy = EnergyMeter(config.offline_after)
        self._client: aiomqtt.Client | None = None
        self.resends_sent = 0
        self._drop_log = RateLimiter(10.0)
        self.lost_ranges: list[tuple[str, int, int]] = []
        self.dispatcher = Dispatcher(
            engine, ingest.registry, config.jobs, self._send, self._resume_latency
        )
        self.power = PowerService(
            engine, ingest.registry, config.power, self._send, self.dispatcher.release
        )
        self._no_key_logged = False
        self._stopping = False

    async def run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(coro, name=name)
                for name, coro in (
                    ("mqtt", self._mqtt_loop()),
                    ("writer", self.writer.run()),
                    ("housekeeping", self._housekeeping_loop()),
                    ("maintenance", self._maintenance_loop()),
                    ("jobs", self._jobs_loop()),
                )
            ]
            self._notifier.ready()
            await stop.wait()
            self._stopping = True
            self._notifier.stopping()
            for task in tasks:
                task.cancel()
        await asyncio.to_thread(self._final_flush)

    def _final_flush(self) -> None:
        """The writer task is gone: drain what it held, or say what could not be."""
        try:
            self.writer.flush()
            self._persist_nodes()
        except sa.exc.SQLAlchemyError as exc:
            log.error(
                "stopping with %d samples unwritten (%s): they are not lost, the agents "
                "resend them from their spools when the coordinator sees the gap",
                self.writer.buffered,
                exc.__class__.__name__,
            )

    async def _mqtt_loop(self) -> None:
        backoff, connected = Backoff(), None
        broker = self.config.broker
        while True:
            try:
                async with aiomqtt.Client(
                    **broker.client_kwargs(self.config.mqtt),
                    identifier=self.config.client_id,
                    clean_session=False,
                    keepalive=30,
                    max_queued_incoming_messages=50_000,
                ) as client:
                    self._client = client
                    if connected is not True:
                        log.info("connected to %s as %s", broker, self.config.client_id)
                    connected = True
                    backoff.reset()
                    for kind in (Kind.HELLO, Kind.STATUS, Kind.TELEMETRY, Kind.EVENTS):
                        await client.subscribe(subscription(kind), qos=1)
                    async for message in client.messages:
                        await self._on_message(message)
            except aiomqtt.MqttError as exc:
                if self._stopping:  # a disconnect that failed while cancelled: no retry
                    return
                if connected is not False:
                    log.warning("broker %s unreachable (%s): retrying", broker, exc)
                connected = False
            finally:
                self._client = None
            await asyncio.sleep(backoff.next_delay())

    async def _on_message(self, message: aiomqtt.Message) -> None:
        payload = message.payload if isinstance(message.payload, bytes) else b""
        dropped_before = self.ingest.dropped.total()
        now = self.clock.now()
        routed = self.ingest.handle(message.topic.value, payload, now)
        if self.ingest.dropped.total() != dropped_before:
            self._log_drop(now)
        if routed.batch is not None:
            batch = routed.batch
            self.energy.add(batch.node, ((s.ts, s.metrics.get("power_w")) for s in batch.samples))
            await self.writer.put(batch)
        if routed.gap is not None:
            await self._ask_resend(*routed.gap)
        if routed.event is not None and routed.event.job_id is None:
            self.power.on_event(routed.event, now)
        elif routed.event is not None:
            await self.dispatcher.on_event(routed.event)

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

    async def _ask_resend(self, node: str, first: int, last: int) -> None:
        if await self._send(node, Resend(from_seq=first, to_seq=last)):
            self.resends_sent += 1
            log.info("asked %s to resend seqs %d..%d", node, first, last)

    async def _send(self, node: str, body: CommandBody) -> bool:
        """Sign and publish a command; False if it could not go now (the caller retries)."""
        if self._key is None:
            if not self._no_key_logged:
                log.error(
                    "no command key at %s: cannot send %s (or any) commands to agents "
                    "(`dormouse key generate`, then copy it to every agent)",
                    self.config.command_key_file,
                    body.OP,
                )
                self._no_key_logged = True
            return False
        if self._client is None:
            return False
        now = self.clock.now()
        command = sign(
            Command(
                id=uuid.uuid4().hex,
                node=node,
                issued_at=now,
                expires_at=now + COMMAND_TTL_S,
                body=body,
            ),
            self._key,
        )
        try:
            await self._client.publish(topic(node, Kind.CMD), encode(command), qos=1)
        except aiomqtt.MqttError:
            return False
        return True

    async def _jobs_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.jobs.schedule_interval)
            try:
                now = self.clock.now()
                await self.dispatcher.tick(now)
                await self.power.tick(now, self.dispatcher.active, self.dispatcher.plan)
            except sa.exc.SQLAlchemyError as exc:
                log.warning("placement/power pass postponed: %s", exc.__class__.__name__)

    def _resume_latency(self, node: str) -> float:
        return self.power.resume_latency(node)

    async def _housekeeping_loop(self) -> None:
        tick = 0
        while True:
            await asyncio.sleep(1.0)
            self._notifier.watchdog()  # a stuck event loop stops this, and systemd restarts it
            tick += 1
            now = self.clock.now()
            for node in self.ingest.registry.expire(now):
                log.warning(
                    "node %s is offline: no telemetry for %gs", node, self.config.offline_after
                )
            again, lost = self.ingest.seqs.due(now)
            for gap in again:
                await self._ask_resend(*gap)
            for node, first, last in lost:
                log.error(
                    "seqs %d..%d of %s are lost: the agent did not resend them", first, last, node
                )
                self.lost_ranges.append((node, first, last))
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                await asyncio.to_thread(self._persist_nodes)
                if tick % 5 == 0:
                    await asyncio.to_thread(self._write_stats, now)

    def _persist_nodes(self) -> None:
        changed = self.ingest.registry.take_changed()
        if changed:
            try:
                with self.engine.begin() as conn:
                    node_rows.save_nodes(conn, changed)
            except sa.exc.SQLAlchemyError:
                self.ingest.registry.changed.update(v.name for v in changed)
                raise

    def stats(self) -> dict[str, float]:
        lags = sorted(self.writer.lags_s)
        values: dict[str, float] = {
            "samples_stored": self.writer.stored,
            "samples_buffered": self.writer.buffered,
            "duplicates": self.ingest.duplicates,
            "resends_sent": self.resends_sent,
            "jobs_placed": self.dispatcher.placed,
            **{f"power_{k}": v for k, v in sorted(self.power.counts.items())},
            "seqs_lost": sum(last - first + 1 for _, first, last in self.lost_ranges),
            "lag_p50_s": lags[len(lags) // 2] if lags else 0.0,
            "lag_p99_s": lags[int(len(lags) * 0.99)] if lags else 0.0,
        }
        values |= {f"received_{k}": v for k, v in self.ingest.received.items()}
        values |= {f"dropped_{k}": v for k, v in self.ingest.dropped.items()}
        return values

    def _write_stats(self, now: float) -> None:
        with self.engine.begin() as conn:
            stat_rows.write_stats(conn, self.stats(), now)

    async def _maintenance_loop(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.maintain, self.clock.now())
            except sa.exc.SQLAlchemyError as exc:
                log.warning("rollups/retention postponed: %s", exc.__class__.__name__)
            await asyncio.sleep(self.config.rollup_interval)

    def maintain(self, now: float) -> None:
        """Roll up finished minutes, then delete what each tier no longer keeps."""
        while True:
            with self.engine.begin() as conn:
                if rollup_rows.roll_up(conn, before=now - self.config.rollup_grace) == 0:
                    break
        keep = self.config.retention
        for table, keep_s in (
            (samples, keep.raw),
            (gpu_samples, keep.raw),
            (rollup_minute, keep.minute),
            (rollup_hour, keep.hour),
        ):
            while True:
                with self.engine.begin() as conn:
                    if rollup_rows.delete_before(conn, table, now - keep_s, keep.delete_batch) == 0:
                        break
