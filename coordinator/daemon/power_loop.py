"""The power side of `dormouse run`: feed the pure policy, carry out its actions.

Each pass (after the jobs pass, from the same snapshot): note what nodes did since the last
pass (fell asleep, came back, with the resume latency learned from it), carry out operator
requests, ask `policy.decide` what to do, and do it: a signed `sleep` command, a wake
(`coordinator.daemon.wakers`), or `failed` with the node's placed jobs back in the queue.
Every decision and transition is written as a power event with its reason; events wait in
memory while the database is down. The policy's inputs come from `core.tick`, as the
simulator's do.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict, deque
from functools import partial

import sqlalchemy as sa

from coordinator.core import tick
from coordinator.core.jobstate import ON_NODE, JobState
from coordinator.core.nodestate import NodeState
from coordinator.core.registry import NodeView, Registry
from coordinator.core.snapshot import node_snapshot
from coordinator.core.tick import ResumeLatencies, Usage
from coordinator.daemon import wakers
from coordinator.daemon.commands import Sender
from coordinator.daemon.dispatch import JobsPass
from coordinator.daemon.slurm_bridge import SlurmBridge
from coordinator.placement.model import Request
from coordinator.power.book import PowerBook
from coordinator.power.forecast import DemandForecast
from coordinator.power.policy import Action, NodePower, manual_refusal
from coordinator.services import jobs as jobs_service
from coordinator.settings import Power
from coordinator.store import jobs as job_rows
from coordinator.store import picks as pick_rows
from coordinator.store import power as power_rows
from coordinator.store.power import PowerEvent, PowerRequest
from shared.messages import Event, Sleep

log = logging.getLogger(__name__)
REQUEST_TTL_S = 60.0
FORECAST_HISTORY_S = 4 * 7 * 86400.0  # weeks of submissions the forecast starts from
ANSWERS = {  # an agent's answer to a sleep, as the operator's request outcome
    "sleep_ack": "done: the agent is going to sleep ({})",
    "sleep_refused": "refused by the agent: {}",
}
BACK_FROM = frozenset({NodeState.WAKING, NodeState.ASLEEP, NodeState.SLEEPING})


class PowerLoop:
    def __init__(
        self,
        engine: sa.Engine,
        registry: Registry,
        config: Power,
        sender: Sender,
        latencies: ResumeLatencies,
        *,
        slurm: SlurmBridge | None = None,
    ) -> None:
        """`slurm`: in Slurm mode, the bridge that carries out the policy's sleeps and wakes
        through Slurm (or leaves them to it) and mends the nodes Slurm holds DOWN."""
        self._engine, self._registry, self._config = engine, registry, config
        self._slurm = slurm
        self._sender, self._latencies = sender, latencies
        self._policy = config.policy()
        self._seen: dict[str, NodeState] = {}  # node -> state at the last pass
        self._idle: dict[str, float | None] = {}
        self._sleeps: deque[float] = deque(maxlen=1000)
        self._wake_sent: dict[str, float] = {}
        self.resumed_at: dict[str, float] = {}  # node -> when it came back from a wake
        self._failed_wake: dict[str, float] = {}  # failed node -> when its wake was sent
        self._unwritten: list[PowerEvent] = []
        self._loaded = False
        self.counts: dict[str, int] = defaultdict(int)
        self._awaiting: dict[str, tuple[int, float]] = {}  # node -> (request id, sent at)
        self._answers: list[tuple[int, str, str]] = []  # (request id, node, outcome) to write
        self._book = PowerBook(self._policy)  # kept across passes: decide costs what is due
        self._changed = registry.watch()
        self._changed.update(registry.nodes)
        self._usage: dict[str, tuple[int, int, float | None]] = {}  # jobs, GPUs, last call
        self._latency_version = -1
        forecast = self._policy.spare == "forecast"
        self._forecast = DemandForecast(self._policy.forecast_alpha) if forecast else None
        self._forecast_seen: float | None = None  # submissions up to here are in the forecast

    async def tick(self, now: float, jobs: JobsPass) -> None:
        if not self._loaded:
            await asyncio.to_thread(self._load_history)
        changed = set(self._changed)
        self._changed.clear()
        self._observe(now, changed)
        calls = await asyncio.to_thread(self._affinity_calls, now)
        self._update_book(now, jobs, calls, changed)
        await self._requests(now)
        wanted = tick.wake_reasons(jobs.plan)
        recent = tick.recent_sleeps(self._sleeps, now)
        requests = self._waiting_requests(jobs)
        is_wanted = partial(self._wanted, requests)
        pool = await self._forecast_pool(now)
        for action in self._book.decide(wanted, now, recent, is_wanted, pool=pool):
            if self._slurm is not None and action.kind in ("sleep", "wake"):
                await self._slurm.carry(action, now, self)  # Slurm's nodes: Slurm does it
            else:
                await self._carry_out(action, now)
        if self._slurm is not None:
            await self._slurm.tick(now, self)
        await asyncio.to_thread(self._flush)

    def on_event(self, event: Event, now: float) -> None:
        """An agent's answer to a sleep: acknowledged, or refused (it is online still). An
        operator's `dormouse sleep` waiting on it gets the answer as its outcome."""
        if event.kind == "sleep_refused":
            self._registry.mark(event.node, NodeState.ONLINE, now)
            log.warning("node %s refused to sleep: %s", event.node, event.detail)
        self._event(now, event.node, event.kind, event.detail)
        asked = self._awaiting.pop(event.node, None)
        if asked is not None and event.kind in ANSWERS:
            self._answers.append((asked[0], event.node, ANSWERS[event.kind].format(event.detail)))

    def note(self, now: float, node: str, kind: str, reason: str) -> None:
        """A node event another part saw (a sample stream reset, a Slurm step), kept in the
        event log."""
        self._event(now, node, kind, reason)

    def _load_history(self) -> None:
        with self._engine.connect() as conn:
            for event in power_rows.events(conn, kinds=power_rows.WAKE_TIMES, limit=10_000):
                if event.value is not None:
                    self._latencies.record(event.node, event.value, self._shape(event.node))
            self._sleeps.extend(e.ts for e in power_rows.events(conn, kinds=("sleep",), limit=100))
        self._loaded = True

    def _shape(self, node: str) -> str | None:
        view = self._registry.nodes.get(node)
        return tick.hello_shape(view.hello) if view is not None else None

    def _affinity_calls(self, now: float) -> dict[str, float]:
        with self._engine.connect() as conn:
            return pick_rows.affinity_since(conn, now - self._policy.idle_after_s)

    def _event(
        self, now: float, node: str, kind: str, reason: str, value: float | None = None
    ) -> None:
        self._unwritten.append(PowerEvent(now, node, kind, reason, value))
        self.counts[kind] += 1

    def _flush(self) -> None:
        if self._unwritten:
            with self._engine.begin() as conn:
                power_rows.log_events(conn, self._unwritten)
            self._unwritten = []

    def _observe(self, now: float, changed: set[str]) -> None:
        """Transitions the registry saw (from agents) since the last pass, as events."""
        self._late_resumes(now)
        for name in changed:
            view = self._registry.nodes.get(name)
            if view is None:  # forgotten (`dormouse nodes forget`)
                self._seen.pop(name, None)
                continue
            before = self._seen.get(view.name)
            self._seen[view.name] = view.state
            if before is None or before == view.state:
                continue
            if view.state is NodeState.ASLEEP:
                self._event(now, view.name, "asleep", f"quiet after {before}")
            elif view.state is NodeState.ONLINE and before in BACK_FROM:
                self._resumed(view, before, now)

    def _late_resumes(self, now: float) -> None:
        """A failed node heard from after all: its wake took longer than the timeout. The
        time is learned (the timeout grows with it); the node stays failed until cleared."""
        for node, woken_at in list(self._failed_wake.items()):
            view = self._registry.nodes.get(node)
            if view is None or view.state is not NodeState.FAILED:
                del self._failed_wake[node]
            elif view.last_seen is not None and view.last_seen > view.state_since:
                del self._failed_wake[node]
                took = view.last_seen - woken_at
                self._latencies.record(node, took, tick.hello_shape(view.hello))
                why = (
                    f"back {took:.1f}s after the wake, after it was failed: `dormouse clear {node}`"
                )
                self._event(now, node, "resumed_late", why, took)
                log.warning("node %s is %s", node, why)

    def _resumed(self, view: NodeView, before: NodeState, now: float) -> None:
        woken_at = self._wake_sent.pop(view.name, None)
        latency = None if woken_at is None else view.state_since - woken_at
        if woken_at is not None:
            self.resumed_at[view.name] = view.state_since
        if latency is not None:
            self._latencies.record(view.name, latency, tick.hello_shape(view.hello))
        reason = (
            f"back {latency:.1f}s after the wake" if latency is not None else f"back from {before}"
        )
        self._event(now, view.name, "resumed", reason, latency)
        log.info("node %s is online again (%s)", view.name, reason)

    def _update_book(
        self, now: float, jobs: JobsPass, calls: dict[str, float], changed: set[str]
    ) -> None:
        """Rebuild the power view of the nodes whose inputs moved since the last pass: seen
        changing by the registry, a different job count or affinity call, or every node when
        a learned wake time moved (a resume: rare)."""
        count: dict[str, int] = defaultdict(int)
        used_gpus: dict[str, int] = defaultdict(int)
        for job in jobs.active:
            if job.state in ON_NODE and job.node:
                count[job.node] += 1
                used_gpus[job.node] += len(job.gpu_indices)
        for assignment in jobs.plan.assignments:
            count[assignment.node] += 1
            used_gpus[assignment.node] += len(assignment.gpus)
        usage = {n: (count[n], used_gpus[n], calls.get(n)) for n in {*count, *calls}}
        moved = {n for n in usage.keys() | self._usage.keys() if usage.get(n) != self._usage.get(n)}
        self._usage = usage
        if self._latencies.version != self._latency_version:
            self._latency_version = self._latencies.version
            moved.update(self._registry.nodes)
        for name in moved | changed:
            view = self._registry.nodes.get(name)
            if view is None:
                self._book.drop(name)  # forgotten: never slept or woken again
                continue
            jobs_on, gpus_on, last_call = usage.get(name, (0, 0, None))
            node_usage = Usage(
                jobs=jobs_on,
                used_gpus=gpus_on,
                cpu_util_pct=view.latest.get("cpu_util_pct"),
                gpu_util_pct=view.latest.get("gpu_util_pct"),
                last_call_at=last_call,
            )
            self._book.put(self._one(view, now, node_usage))

    async def _forecast_pool(self, now: float) -> int | None:
        """With `spare = "forecast"`: learn the jobs submitted since the last pass (the last
        `FORECAST_HISTORY_S` at start), and size the spare pool from the forecast."""
        forecast = self._forecast
        if forecast is None:
            return None
        since = self._forecast_seen
        if since is None:
            since = now - FORECAST_HISTORY_S
        submitted = await asyncio.to_thread(self._submitted_since, since)
        for ts, gpus in submitted:
            forecast.observe(ts, gpus)
        forecast.advance(now)
        self._forecast_seen = max([since, *(ts for ts, _ in submitted)])
        wake_s = self._latencies.fleet_estimate(self._config.resume_latency)
        policy = self._policy
        return forecast.spare_gpus(now, wake_s, least=policy.spare_gpus, most=policy.spare_max_gpus)

    def _submitted_since(self, since: float) -> list[tuple[float, int]]:
        with self._engine.connect() as conn:
            return job_rows.submitted_since(conn, since)

    @staticmethod
    def _waiting_requests(jobs: JobsPass) -> list[Request]:
        waiting = {w.job_id for w in jobs.plan.waiting}
        return [
            j.as_job().request
            for j in jobs.active
            if j.id in waiting and j.state is JobState.PENDING
        ]

    def _wanted(self, requests: list[Request], power: NodePower) -> bool:
        """A pending job could run on the node (asked only of nodes due to sleep)."""
        return tick.wanted_by(requests, node_snapshot(self._registry.nodes[power.name]))

    def _one(self, view: NodeView, now: float, usage: Usage) -> NodePower:
        power = tick.node_power(
            view.name,
            view.state,
            view.state_since,
            gpus=len(view.hello.gpus) if view.hello else 0,
            usage=usage,
            idle_before=self._idle.get(view.name),
            wanted=False,  # asked of the nodes due to sleep only (`_wanted`)
            now=now,
            policy=self._policy,
            can_sleep=bool(view.hello and view.hello.sleep_methods),
            can_wake=wakers.wake_method(view.hello, self._config) is not None,
            resume_p95_s=self._latencies.quantile(view.name, 0.95, tick.hello_shape(view.hello)),
            first_wakes=self._latencies.first_wakes(view.name),
        )
        self._idle[view.name] = power.idle_since
        return power

    async def _carry_out(self, action: Action, now: float) -> bool:
        if action.kind == "sleep":
            return await self._sleep(action.node, action.reason, now)
        if action.kind == "wake":
            return await self._wake(action.node, action.reason, now)
        self._registry.mark(action.node, NodeState.FAILED, now)
        woken_at = self._wake_sent.pop(action.node, None)
        if woken_at is not None:
            self._failed_wake[action.node] = woken_at
        self._event(now, action.node, "failed", action.reason)
        log.error(
            "node %s failed: %s; `dormouse clear %s` once it is fixed",
            action.node,
            action.reason,
            action.node,
        )
        why = f"{action.node} failed to resume"
        moved = await asyncio.to_thread(
            jobs_service.unplace_node, self._engine, action.node, why, now
        )
        if moved:
            log.info("%d job(s) placed on %s are back in the queue", moved, action.node)
        return True

    async def _sleep(self, node: str, reason: str, now: float) -> bool:
        """Marked before the send: the agent's answer may arrive before the PUBACK does."""
        self._registry.mark(node, NodeState.SLEEPING, now)
        if not await self._sender.send(node, Sleep(reason=reason)):
            self._registry.mark(node, NodeState.ONLINE, now)
            return False
        self._sleeps.append(now)
        self._event(now, node, "sleep", reason)
        log.info("node %s: sleep sent (%s)", node, reason)
        return True

    async def _wake(self, node: str, reason: str, now: float) -> bool:
        return (await self.wake(node, reason, now))[0]

    async def wake(self, node: str, reason: str, now: float, attempt: int = 0) -> tuple[bool, str]:
        """Send a wake (`attempt` picks the method: `wakers.wake_method`); returns whether it
        was sent and how, or why not."""
        view = self._registry.nodes[node]
        before = view.state
        self._registry.mark(node, NodeState.WAKING, now)  # before the packet: it may be back
        self._wake_sent[node] = now
        try:
            how = await wakers.wake(view.hello, self._config, attempt) if view.hello else None
        except OSError as exc:
            self._registry.mark(node, before, now)
            self._event(now, node, "wake_error", f"{reason}: {exc}")
            log.error("node %s: wake failed: %s", node, exc)
            return False, str(exc)
        self._event(now, node, "wake", f"{reason} ({how})")
        log.info("node %s: woken (%s): %s", node, reason, how)
        return True, str(how)

    async def _requests(self, now: float) -> None:
        """Operator requests, refused with the reason when the policy forbids them. A sent
        sleep stays open until the agent answers (it may refuse: a job runs)."""
        self._unanswered(now)
        while self._answers:  # an answered sleep's outcome, in the log as on the request
            request_id, node, outcome = self._answers.pop(0)
            self._event(now, node, "request_sleep", outcome)
            await asyncio.to_thread(self._finish, request_id, outcome, now)
        waiting = {request_id for request_id, _ in self._awaiting.values()}
        pending = [r for r in await asyncio.to_thread(self._open_requests) if r.id not in waiting]
        if not pending:
            return
        by_name = dict(self._book.nodes)
        nodes = list(by_name.values())
        for request in pending:
            outcome = await self._request(request, by_name, nodes, now)
            if request.action == "sleep" and outcome == "done":  # sent: the agent decides
                self._awaiting[request.node] = (request.id, now)
                outcome = "sent: waiting for the agent's answer"
            else:
                await asyncio.to_thread(self._finish, request.id, outcome, now)
            self._event(now, request.node, f"request_{request.action}", outcome)

    def _unanswered(self, now: float) -> None:
        for node, (request_id, sent_at) in list(self._awaiting.items()):
            if now - sent_at > REQUEST_TTL_S:
                del self._awaiting[node]
                self._answers.append(
                    (
                        request_id,
                        node,
                        f"failed: sent, but {node} did not answer in {REQUEST_TTL_S:g}s",
                    )
                )

    def _open_requests(self) -> list[PowerRequest]:
        with self._engine.connect() as conn:
            return power_rows.open_requests(conn)

    def _finish(self, request_id: int, outcome: str, now: float) -> None:
        with self._engine.begin() as conn:
            power_rows.finish_request(conn, request_id, outcome, now)

    async def _request(
        self,
        request: PowerRequest,
        by_name: dict[str, NodePower],
        nodes: list[NodePower],
        now: float,
    ) -> str:
        node = by_name.get(request.node)
        if node is None:
            return f"refused: unknown node {request.node}"
        if now - request.ts > REQUEST_TTL_S:
            return f"expired: not acted on within {REQUEST_TTL_S:g}s"
        refusal = manual_refusal(
            request.action, node, nodes, self._policy, now, force=request.force
        )
        if refusal is not None:
            return f"refused: {refusal}"
        if request.action == "clear":
            self._registry.mark(node.name, NodeState.ASLEEP, now)
            return "done: cleared, asleep until woken or heard from"
        why = request.source + (" (forced)" if request.force else "")
        if request.action == "sleep":
            done = await self._sleep(node.name, why, now)
        else:
            done = await self._wake(node.name, why, now)
        return "done" if done else "failed: could not be sent now (see the coordinator log)"
