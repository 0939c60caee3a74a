"""`dormouse run`'s task group: MQTT in, SQL out, placement and power passes.

The parts are built and wired by `coordinator.daemon.main.build`; this class only runs them
as named tasks and stops them cleanly. Tasks: `mqtt` (the broker session, every message to
the receiver), `writer` (batched inserts), `housekeeping` (watchdog, offline nodes, gap
resends, node rows, stats), `maintenance` (rollups, retention), `leadership` and `passes`
(placement, then power, from the same snapshot); an ingest worker runs only the first three,
the leader role adds `live` (its view of telemetry, from the store).

A database outage keeps samples in the writer's bounded buffer and retries; when the buffer
is full the coordinator stops reading from the broker (which queues for its persistent
session) and says so. Whatever is lost in between (a crash, an overflow) shows up as a seq
gap and is asked for again from the agent's spool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from coordinator.core.ingest import Ingest
from coordinator.core.ratelimit import Outage
from coordinator.daemon.dispatch import Dispatcher
from coordinator.daemon.figures import Figures
from coordinator.daemon.housekeeping import Housekeeping
from coordinator.daemon.leadership import Leadership
from coordinator.daemon.live import LiveFeed
from coordinator.daemon.maintenance import Maintenance
from coordinator.daemon.mqtt import MqttLink
from coordinator.daemon.power_loop import PowerLoop
from coordinator.daemon.receiver import Receiver
from coordinator.daemon.writer import Writer
from coordinator.power.energy import EnergyMeter
from coordinator.settings import ROLE_INGEST, CoordinatorConfig
from shared.clock import Clock
from shared.edge.notify import Notifier
from shared.edge.tasks import Stopped, Stopping

log = logging.getLogger(__name__)
STEP_DOWN_AFTER = 3  # unexpected pass failures in a row before a shared store's leader steps down


@dataclass(frozen=True, slots=True, kw_only=True)
class Parts:
    """Everything `run` starts, built once by `main.build`; readers (`/metrics`, the demo,
    `stats`) look through it rather than into the tasks."""

    config: CoordinatorConfig
    clock: Clock
    ingest: Ingest
    writer: Writer
    energy: EnergyMeter
    receiver: Receiver
    link: MqttLink
    dispatcher: Dispatcher
    power: PowerLoop
    housekeeping: Housekeeping
    maintenance: Maintenance
    figures: Figures
    notifier: Notifier
    stopping: Stopping
    leadership: Leadership
    live_feed: LiveFeed | None = None  # the leader role's telemetry, from the store


class Coordinator:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.failed_passes = 0  # unexpected errors in the leader's passes, in a row

    async def run(self, stop: asyncio.Event) -> None:
        p = self.parts
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(coro, name=name) for name, coro in self._tasks()]
            p.notifier.ready()
            await stop.wait()
            p.stopping.request()
            p.notifier.stopping()
            for task in tasks:
                task.cancel()
        await asyncio.to_thread(self.final_flush)

    def _tasks(self) -> list[tuple[str, Coroutine[Any, Any, None]]]:
        """This role's tasks: an ingest worker never leads, so it neither contends for the
        lock nor runs the leader's passes and maintenance."""
        p = self.parts
        tasks = [
            ("mqtt", p.link.run()),
            ("writer", p.writer.run()),
            ("housekeeping", p.housekeeping.run()),
        ]
        if p.config.role != ROLE_INGEST:
            tasks += [
                ("maintenance", p.maintenance.run()),
                ("leadership", p.leadership.run()),
                ("passes", self._passes()),
            ]
        if p.live_feed is not None:
            tasks.append(("live", p.live_feed.run()))
        return tasks

    def final_flush(self) -> None:
        """The writer task is gone: drain what it held, or say what could not be."""
        writer = self.parts.writer
        try:
            writer.flush()
            if self.parts.leadership.leading.is_set():
                self.parts.housekeeping.persist_nodes()
        except sa.exc.SQLAlchemyError as exc:
            log.error(
                "stopping with %d samples unwritten (%s): they are not lost, the agents "
                "resend them from their spools when the coordinator sees the gap",
                writer.buffered,
                exc.__class__.__name__,
            )

    async def _passes(self) -> None:
        p = self.parts
        outage = Outage("placement/power passes")
        while not p.stopping.requested:  # a cancel a send swallowed (Python 3.11) ends it too
            await asyncio.sleep(p.config.jobs.schedule_interval)
            if p.leadership.leading.is_set():  # a standby ingests; the leader decides
                await self.one_pass(outage)

    async def one_pass(self, outage: Outage) -> None:
        """Place and power once. The store being away is an outage (logged once, retried);
        anything else is a bug, logged with its traceback: the next pass tries again, and
        after `STEP_DOWN_AFTER` in a row a leader that shares the store hands the lead to a
        standby for `lease_s` x 3. The passes never end while the process holds the lead."""
        p = self.parts
        now = p.clock.now()
        try:
            jobs = await p.dispatcher.tick(now)
            await p.power.tick(now, jobs)
        except sa.exc.SQLAlchemyError as exc:
            if said := outage.failed(exc.__class__.__name__, now):
                log.warning("%s", said)
        except Stopped:
            raise
        except Exception:
            self.failed_passes += 1
            log.exception("a placement/power pass failed (%d in a row)", self.failed_passes)
            if self.failed_passes >= STEP_DOWN_AFTER and p.leadership.shared:
                p.leadership.hand_over(
                    f"{self.failed_passes} passes in a row failed", p.leadership.lease_s * 3
                )
                self.failed_passes = 0
        else:
            self.failed_passes = 0
            if said := outage.succeeded(now):
                log.info("%s", said)

    def stats(self) -> dict[str, float]:
        return self.parts.figures.collect()
