"""The jobs side of `dormouse run`: turn placement plans and agent reports into job rows and
signed commands (STYLE.md: only the service layer applies a plan).

Each pass: load active jobs, expire jobs on nodes that stayed offline, ask agents to cancel
what users cancelled, place pending jobs (pure `schedule`), send `run` to the chosen nodes,
and send again a placed job that has not started within `dispatch_retry`. A row changes
only through `coordinator.core.jobstate` and only if it is still as it was loaded.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from dataclasses import dataclass, field

import sqlalchemy as sa

from coordinator.core import jobstate
from coordinator.core.jobstate import Change, JobRecord, JobState
from coordinator.core.nodestate import NodeState
from coordinator.core.registry import Registry
from coordinator.core.snapshot import KeptCluster
from coordinator.core.tick import ResumeLatencies, hello_shape
from coordinator.daemon.commands import Sender
from coordinator.daemon.costs import CostWatch
from coordinator.daemon.outputs import Outputs
from coordinator.placement.model import Job
from coordinator.placement.scheduler import Plan, schedule
from coordinator.power.defer import DeferPolicy, Hold, Holds, fleet_of
from coordinator.settings import Jobs
from coordinator.store import drains as drain_rows
from coordinator.store import jobs as job_rows
from shared.messages import CancelJob, Event, RunJob
from shared.units import iso

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class JobsPass:
    """What a jobs pass saw and decided: the power pass reads it, from the same instant."""

    active: list[JobRecord] = field(default_factory=list)
    plan: Plan = field(default_factory=Plan)
    held: dict[str, Hold] = field(default_factory=dict)  # held for a cheaper window


class Dispatcher:
    def __init__(
        self,
        engine: sa.Engine,
        registry: Registry,
        config: Jobs,
        sender: Sender,
        *,
        latencies: ResumeLatencies,
        default_resume_s: float,
        holds: Holds | None = None,
        own_key: str | None = None,
        costs: CostWatch | None = None,
    ) -> None:
        """`own_key`: the id of the command key (`signing.key_id`), to pass by the nodes
        whose agents say they verify with another."""
        self._engine, self._registry, self._config = engine, registry, config
        self._sender, self._latencies, self._default_resume_s = sender, latencies, default_resume_s
        self.last = JobsPass()  # for `/metrics`
        self._run_sent: dict[str, float] = {}  # job id -> when `run` was last sent
        self._cancel_sent: dict[str, float] = {}  # job id -> when `cancel` was last sent
        self._wakes_logged: set[str] = set()
        self._held_logged = False
        self._unapplied: deque[Event] = deque()
        self._holds = holds or Holds(None, DeferPolicy())
        self._holds_logged: set[str] = set()
        self.placed = 0
        self.cluster = KeptCluster(registry, self._resume_latency, own_key)  # across passes
        self._refusing: dict[str, str] = {}  # node -> why its agent cannot verify, as logged
        self.costs = costs  # waste and budgets: None in tests of placement alone
        self.outputs = Outputs(engine, registry, sender)  # `dormouse jobs logs`
        self._budget_logged: set[str] = set()

    async def tick(self, now: float) -> JobsPass:
        await self._apply_held()
        await self.outputs.tick(now)
        await self._read_drains()
        active = await asyncio.to_thread(self._load)
        active = await self._expire(active, now)
        await self._cancel(active, now)
        if self.costs is not None:
            await self.costs.budgets(now)
        plan, held = await self._place(active, now)
        await self._retry(active, now)
        if self.costs is not None:
            await self.costs.waste(active, now)
        live = {j.id for j in active}
        for sent in (self._run_sent, self._cancel_sent):
            for gone in sent.keys() - live:
                del sent[gone]
        self.last = JobsPass(active, plan, held)
        return self.last

    async def _read_drains(self) -> None:
        """The operators' drains, every pass: a `dormouse drain` from any machine acts at
        the next one."""

        def read() -> dict[str, dict[int, str]]:
            with self._engine.connect() as conn:
                return drain_rows.all_drains(conn)

        self._registry.set_drains(await asyncio.to_thread(read))

    def _load(self) -> list[JobRecord]:
        with self._engine.connect() as conn:
            return job_rows.active(conn)

    async def _write(self, before: JobRecord, change: Change, now: float) -> bool:
        def write() -> bool:
            with self._engine.begin() as conn:
                return job_rows.apply(conn, before, change, now)

        written = await asyncio.to_thread(write)
        if written:
            log.info("job %s: %s %s", before.id, change.kind, change.detail)
        return written

    async def _expire(self, active: list[JobRecord], now: float) -> list[JobRecord]:
        """Jobs on a node offline for `lost_after` are lost (or go back to the queue)."""
        kept = []
        for job in active:
            gone_for = self._offline_for(job.node, now)
            if job.state in jobstate.ON_NODE and gone_for > self._config.lost_after:
                change = jobstate.lose(job, now, f"{job.node} offline for {gone_for:.0f}s")
                kept.append(change.job if await self._write(job, change, now) else job)
            else:
                kept.append(job)
        return [j for j in kept if j.state in jobstate.ACTIVE]

    def _offline_for(self, node: str | None, now: float) -> float:
        view = self._registry.nodes.get(node or "")
        if view is None or view.state is not NodeState.OFFLINE:
            return 0.0
        return now - view.state_since

    async def _cancel(self, active: list[JobRecord], now: float) -> None:
        for job in active:
            due = self._due(self._cancel_sent, job, now)  # the first goes out at once
            if job.cancel_requested and job.state in jobstate.ON_NODE and due:
                body = CancelJob(job_id=job.id, grace_s=self._config.cancel_grace)
                if await self._sender.send(job.node or "", body):
                    self._cancel_sent[job.id] = now

    def _due(self, sent: dict[str, float], job: JobRecord, now: float) -> bool:
        """Never sent, or sent `dispatch_retry` ago without an answer."""
        return now - sent.get(job.id, -math.inf) >= self._config.dispatch_retry

    @property
    def held(self) -> str | None:
        """Why no job is placed (no command key): placing a job no agent will accept would
        leave it `placed` past its deadline, so it stays `pending` and says why instead."""
        return self._sender.unable

    async def _place(self, active: list[JobRecord], now: float) -> tuple[Plan, dict[str, Hold]]:
        state = self.cluster.sync(active, self._latencies.version)  # kept current for readers
        self._log_refusing()
        if self.held is not None:
            if not self._held_logged:
                log.error("not placing jobs: %s (`dormouse key generate`)", self.held)
                self._held_logged = True
            return Plan(), {}
        pending = {
            j.id: j for j in active if j.state is JobState.PENDING and not j.cancel_requested
        }
        margin = self._latencies.fleet_estimate(self._default_resume_s)
        released = await self._released(pending)
        jobs, over = self._over_budget(pending, released)
        await self._log_budget_holds(over, now)
        ready, held = self._holds.split(
            jobs, now, margin, lambda: fleet_of(state.snapshot()), released
        )
        self._holds.keep_only(set(pending))
        await self._log_holds(held, now)
        plan = schedule(ready, state, now)
        for assignment in plan.assignments:
            change = jobstate.place(pending[assignment.job_id], assignment, now)
            if change is not None and await self._write(pending[assignment.job_id], change, now):
                self.placed += 1
                await self._dispatch(change.job, now)
        for wake in plan.wakes:
            if wake.node not in self._wakes_logged:
                log.info("job %s waits for %s to wake", wake.job_id, wake.node)
        self._wakes_logged = {w.node for w in plan.wakes}  # said again if wanted again later
        return plan, held

    def _over_budget(
        self, pending: dict[str, JobRecord], released: set[str]
    ) -> tuple[list[Job], dict[str, str]]:
        if self.costs is None:
            return [j.as_job() for j in pending.values()], {}
        return self.costs.placeable(pending.values(), released)

    async def _log_budget_holds(self, held: dict[str, str], now: float) -> None:
        """A job held for its account's budget is said once, as a job event (`dormouse
        jobs` shows `held (over budget)`)."""
        new = {job_id: why for job_id, why in held.items() if job_id not in self._budget_logged}
        self._budget_logged &= held.keys()
        if not new:
            return

        def write() -> None:
            with self._engine.begin() as conn:
                for job_id, why in new.items():
                    job_rows.log_hold(conn, job_id, now, "held (over budget)", why)

        await asyncio.to_thread(write)
        for job_id, why in new.items():
            log.info("job %s held: %s", job_id, why)
        self._budget_logged |= new.keys()

    def _log_refusing(self) -> None:
        """A node whose agent cannot verify commands is said once (again if it changes);
        the kept cluster keeps them as its nodes change, so a pass reads no other node."""
        refusing = self.cluster.refusing
        if refusing == self._refusing:
            return
        for name, why in refusing.items():
            if self._refusing.get(name) != why:
                log.warning(
                    "placing nothing on %s: its agent cannot verify commands (%s: install "
                    "the coordinator's command key there and restart the agent)",
                    name,
                    why,
                )
        self._refusing = dict(refusing)

    async def _released(self, pending: dict[str, JobRecord]) -> set[str]:
        """The jobs held at the last pass (for a cheaper window or their account's budget)
        that an operator asked to start now (read only while some are held: most passes
        hold none)."""
        was_held = self.last.held.keys() | self._budget_logged
        asked = [job_id for job_id in was_held if job_id in pending]
        if not asked:
            return set()

        def read() -> set[str]:
            with self._engine.connect() as conn:
                return job_rows.released(conn, asked)

        return await asyncio.to_thread(read)

    async def _log_holds(self, held: dict[str, Hold], now: float) -> None:
        """A job's hold is said once, in the log and as a job event (`dormouse job ID`)."""
        new = {job_id: hold for job_id, hold in held.items() if job_id not in self._holds_logged}
        self._holds_logged &= held.keys()
        if not new:
            return

        def write() -> None:
            with self._engine.begin() as conn:
                for job_id, hold in new.items():
                    why = f"until {iso(hold.until)}, {hold.reason}"
                    job_rows.log_hold(conn, job_id, now, hold.note(), why)

        await asyncio.to_thread(write)
        for job_id, hold in new.items():
            log.info("job %s held until %s: %s", job_id, iso(hold.until), hold.reason)
        self._holds_logged |= new.keys()

    def _resume_latency(self, node: str) -> float:
        view = self._registry.nodes.get(node)
        shape = hello_shape(view.hello) if view is not None else None
        return self._latencies.estimate(node, self._default_resume_s, shape)

    async def _dispatch(self, job: JobRecord, now: float) -> None:
        factor = self._config.runtime_limit_factor
        body = RunJob(
            job_id=job.id,
            argv=job.argv,
            gpus=job.gpu_indices,
            cpus=job.cpus,
            mem_bytes=job.mem_bytes,
            runtime_limit_s=job.runtime_s * factor if factor > 0 else None,
        )
        if await self._sender.send(job.node or "", body):
            self._run_sent[job.id] = now

    async def _retry(self, active: list[JobRecord], now: float) -> None:
        """A `run` lost on the way (agent offline, broker restart) is sent again; the agent
        starts a job id only once, and answers a repeat with the job's state."""
        for job in active:
            waiting = job.state is JobState.PLACED and not job.cancel_requested
            if waiting and self._due(self._run_sent, job, now):
                await self._dispatch(job, now)

    async def on_event(self, event: Event) -> None:
        """Apply an agent's job report; while the database is down, keep it for the next pass.
        A piece of output asked for (`job_output`) goes to its request, not the job."""
        if event.kind == "job_output":
            await self.outputs.on_event(event)
            return
        try:
            await self._apply_event(event)
        except sa.exc.SQLAlchemyError as exc:
            self._unapplied.append(event)
            log.warning("job report from %s held for retry: %s", event.node, type(exc).__name__)

    async def _apply_held(self) -> None:
        while self._unapplied:
            await self._apply_event(self._unapplied[0])
            self._unapplied.popleft()

    async def _apply_event(self, event: Event) -> None:
        if event.job_id is None:
            return

        def read() -> JobRecord | None:
            with self._engine.connect() as conn:
                return job_rows.get(conn, event.job_id or "")

        job = await asyncio.to_thread(read)
        if job is None:
            log.warning("%s reported %s for unknown job %s", event.node, event.kind, event.job_id)
            return
        change = jobstate.on_event(job, event)
        if change is not None:
            await self._write(job, change, event.ts)
        if (event.stdout_tail or event.stderr_tail) and job.node == event.node:
            await asyncio.to_thread(self._save_output, event)

    def _save_output(self, event: Event) -> None:
        """The end of the job's output, from its end event: `dormouse jobs logs` reads it
        while the node sleeps."""
        with self._engine.begin() as conn:
            job_rows.save_output(
                conn, event.job_id or "", event.stdout_tail, event.stderr_tail, event.ts
            )
