"""A discrete-event simulation that drives the daemon's own policy objects.

At every instant something happens (a job arrives or ends, a node resumes, a timer of the
power policy comes due) the simulator does what `dormouse run` does on each pass, with the
same functions: `placement.scheduler.schedule` over a `ClusterSnapshot`, then
`power.policy.decide` over `NodePower` snapshots with placement's wakes. There is no
simulator-only branch in either; the simulator only models what the hardware would do:
jobs end after their runtime, a woken node is back after its resume latency (+- jitter) or,
with `wake_failure`, never, and a failed node is cleared by an operator after `clear_after`.

A job larger than the largest node (the ITP traces hold 64-GPU jobs) is split into equal
parts that each fit a node; it starts when its last part starts and ends when its last part
ends. Baselines: `always-on` (EDF, never sleeps), `always-on-fifo` (submit order: the jobs
reach placement without deadlines), `round-robin` (submit order, the next node in turn
that fits, never sleeps), `dormouse-flat` (dormouse with the fixed `resume_timeout`, not the
learned one), `dormouse-no-holds` (dormouse holding no job for a cheaper window: the twin a
policy's holds are measured against). A failed node that comes back late counts as
`wrongly_failed`, and its wake time is learned (it stays failed until the operator clears
it, as in the daemon). The host does not know it was failed: from a wake that will succeed
it draws awake power, failed or not, and once cleared it is heard from at once (online); a
wake that never brings the host back draws awake power until the node is failed, sleep
power after.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from coordinator.core.nodestate import MEANING, NodeState
from coordinator.core.tick import (
    ResumeLatencies,
    Usage,
    node_power,
    node_snapshot,
    recent_sleeps,
    wake_reasons,
    wanted_by,
)
from coordinator.placement.filters import rejection
from coordinator.placement.model import Allocation, ClusterSnapshot, Job, NodeSnapshot, Request
from coordinator.placement.scheduler import Assignment, Plan, schedule
from coordinator.placement.select import assign_gpus
from coordinator.placement.state import ClusterState
from coordinator.power.book import PowerBook
from coordinator.power.defer import DeferPolicy, Holds, fleet_of
from coordinator.power.forecast import DemandForecast
from coordinator.power.policy import Action, NodePower, PowerPolicy, WakeWanted
from coordinator.power.tariff import Rate
from coordinator.sim.fleet import NodeType
from coordinator.sim.trace import TraceJob
from shared.units import J_PER_KWH

SUBMIT, FINISH, RESUME, CLEAR, TICK = range(5)
STOP_AFTER_S = 30 * 86400.0


@dataclass(frozen=True, slots=True)
class SimPolicy:
    name: str
    fifo: bool  # placement sees no deadlines: submit order
    round_robin: bool
    sleep: bool
    learned_timeout: bool = True  # False: the fixed resume_timeout, whatever wakes measured
    defer: bool = False  # hold jobs with slack for a cheaper (cleaner) window


POLICIES = {
    p.name: p
    for p in (
        SimPolicy("dormouse", fifo=False, round_robin=False, sleep=True, defer=True),
        SimPolicy("dormouse-no-holds", fifo=False, round_robin=False, sleep=True),
        SimPolicy(
            "dormouse-flat", fifo=False, round_robin=False, sleep=True, learned_timeout=False
        ),
        SimPolicy("always-on", fifo=False, round_robin=False, sleep=False),
        SimPolicy("always-on-fifo", fifo=True, round_robin=False, sleep=False),
        SimPolicy("round-robin", fifo=True, round_robin=True, sleep=False),
    )
}


@dataclass
class SimNode:
    name: str
    kind: NodeType
    state: NodeState
    state_since: float
    idle_since: float | None
    last_t: float
    energy_j: float = 0.0
    cost: float = 0.0  # energy priced at the tariff
    co2_g: float = 0.0
    tariff: Rate | None = None
    carbon: Rate | None = None
    used_cpus: int = 0
    used_gpus: int = 0
    tasks: int = 0
    toggles: list[float] = field(default_factory=list)
    wake_id: int = 0
    host_up: bool = True  # powered: up, or resuming from a wake that will succeed
    late: bool = False  # failed, then heard from: the wake was slower than the timeout
    snapshot: NodeSnapshot | None = None  # cached until the node changes
    power: NodePower | None = None
    on_change: Callable[[str], None] | None = None  # the simulation notes what changed

    def power_w(self) -> float:
        if not (self.host_up or MEANING[self.state].draws_awake_power):
            return self.kind.asleep_w
        kind = self.kind
        used = self.used_gpus / kind.gpus if kind.gpus else self.used_cpus / kind.cpus
        return kind.power_w(used)

    def advance(self, t: float) -> None:
        """Count the energy (and its cost and CO2) up to `t`; call before anything that changes
        the power."""
        watts = self.power_w()
        self.energy_j += watts * (t - self.last_t)
        if self.tariff is not None:
            self.cost += watts * self.tariff.integral(self.last_t, t) / J_PER_KWH
        if self.carbon is not None:
            self.co2_g += watts * self.carbon.integral(self.last_t, t) / J_PER_KWH
        self.last_t = t

    def set_state(self, state: NodeState, t: float) -> None:
        self.advance(t)
        self.state, self.state_since = state, t
        self.late = False
        self.changed()

    def changed(self) -> None:
        self.snapshot = self.power = None
        if self.on_change is not None:
            self.on_change(self.name)


@dataclass
class JobRun:
    trace: TraceJob
    parts: int
    started: int = 0
    finished: int = 0
    start_s: float | None = None
    end_s: float | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One pass's inputs and outputs, for checking the simulator against the daemon."""

    now: float
    jobs: tuple[Job, ...]
    cluster: ClusterSnapshot
    plan: Plan
    nodes: tuple[NodePower, ...]
    wanted: tuple[WakeWanted, ...]
    recent_sleeps: tuple[float, ...]
    actions: tuple[Action, ...]


@dataclass
class Outcome:
    """What happened; `metrics.summarise` turns it into the report."""

    policy: str
    start: float
    end: float
    jobs: list[JobRun]
    nodes: list[SimNode]
    sleeps: int = 0
    wakes: int = 0
    failures: int = 0
    wrongly_failed: int = 0  # failed, then came back: the timeout was too short for it
    held: int = 0  # jobs held for a cheaper window
    priced: bool = False  # a tariff was given: nodes' `cost` counts
    carbon: bool = False


class Simulation:
    def __init__(
        self,
        trace: list[TraceJob],
        fleet: list[NodeType],
        policy: SimPolicy,
        power: PowerPolicy,
        *,
        seed: int = 0,
        clear_after_s: float = 3600.0,
        record: Callable[[Step], None] | None = None,
        tariff: Rate | None = None,
        carbon: Rate | None = None,
        defer: DeferPolicy | None = None,
    ) -> None:
        """`tariff` and `carbon` are on trace time (`Rate.on_trace`)."""
        self._policy, self._power = policy, replace(power, sleep_idle=policy.sleep)
        if not policy.learned_timeout:
            self._power = replace(self._power, resume_timeout_factor=0.0)
        self._rng = random.Random(seed)  # noqa: S311 - a seeded simulation, not secrets
        self._clear_after_s, self._record = clear_after_s, record
        start = trace[0].submit_s if trace else 0.0
        self.nodes = [
            SimNode(f"{k.name}-{i:03d}", k, NodeState.ONLINE, start, start, start)
            for k in fleet
            for i in range(k.count)
        ]
        # Changed nodes to put into the cluster state and the power book, in the order they
        # changed (dicts, not sets: the states keep the fleet's order, as a rebuild would).
        self._placement_dirty: dict[str, None] = {}
        self._power_dirty: dict[str, None] = {}
        self._cluster = ClusterState()
        self._book = PowerBook(self._power)
        forecast = self._power.spare == "forecast"
        self._forecast = DemandForecast(self._power.forecast_alpha) if forecast else None
        for node in self.nodes:
            node.tariff, node.carbon = tariff, carbon
            node.on_change = self._changed
            node.changed()
        self._by_name = {n.name: n for n in self.nodes}
        defer = defer or DeferPolicy()
        by = carbon if defer.by == "carbon" else tariff
        self._holds = Holds(by if policy.defer else None, defer)
        self._release_at: set[float] = set()
        self._default_resume_s = max((k.resume_latency_s for k in fleet), default=0.0)
        largest = max((k.gpus for k in fleet), default=0)
        self.runs = [JobRun(j, _parts(j, largest)) for j in trace]
        self._unfinished = len(self.runs)
        last = max((j.submit_s + j.runtime_s for j in trace), default=start)
        self._stop_at = last + STOP_AFTER_S  # jobs that never run (every wake fails) end it
        self._events: list[tuple[float, int, int, Any]] = []  # (t, order, kind, kind's data)
        self._seq = 0
        self._pending: dict[str, tuple[Job, int]] = {}
        self._sleeps: list[float] = []
        self._tick_at = math.inf
        self._turn = 0
        self._latencies = ResumeLatencies()
        self.outcome = Outcome(policy.name, start, start, self.runs, self.nodes)
        self.outcome.priced, self.outcome.carbon = tariff is not None, carbon is not None
        for index, run in enumerate(self.runs):
            self._push(run.trace.submit_s, SUBMIT, index)

    def _changed(self, name: str) -> None:
        self._placement_dirty[name] = None
        self._power_dirty[name] = None

    def _push(self, t: float, kind: int, data: Any) -> None:
        self._seq += 1
        heapq.heappush(self._events, (t, self._seq, kind, data))

    def run(self, progress: Callable[[int], None] | None = None) -> Outcome:
        done = 0
        while self._events and self._unfinished and self._events[0][0] <= self._stop_at:
            now = self._events[0][0]
            while self._events and self._events[0][0] == now:
                _, _, kind, data = heapq.heappop(self._events)
                done += self._apply(kind, data, now)
            self._step(now)
            if progress is not None and done:
                progress(done)
                done = 0
        end = max([r.end_s for r in self.runs if r.end_s is not None], default=self.outcome.start)
        for node in self.nodes:
            node.advance(max(end, node.last_t))
        self.outcome.end = end
        return self.outcome

    def _apply(self, kind: int, data: Any, now: float) -> int:
        """Apply one event; returns 1 when a job was submitted (for progress)."""
        if kind == SUBMIT:
            run = self.runs[data]
            if self._forecast is not None:
                self._forecast.observe(now, run.trace.gpus)
            for part in range(run.parts):
                job = _job(run.trace, run.parts, part, fifo=self._policy.fifo)
                self._pending[job.id] = (job, data)
            return 1
        if kind == FINISH:
            self._finish(data, now)
        elif kind == RESUME:
            name, wake_id, woken_at = data
            node = self._by_name[name]
            if node.wake_id == wake_id:
                self._resumed(node, woken_at, now)
        elif kind == CLEAR:
            self._clear(self._by_name[data], now)
        return 0

    def _resumed(self, node: SimNode, woken_at: float, now: float) -> None:
        """The host is back: its wake time is learned whatever the coordinator made of it. A
        failed node stays failed (up and idle, though placement may not use it); a waking one,
        or one cleared to asleep before it was back, is heard from: online."""
        cleared_early = node.state is NodeState.ASLEEP and node.host_up
        if not (cleared_early or node.state in {NodeState.WAKING, NodeState.FAILED}):
            return
        self._learn(node.name, now - woken_at, node.kind.name)
        if node.state is NodeState.FAILED:
            self.outcome.wrongly_failed += 1
            node.late = True
        else:
            self._online(node, now)

    def _clear(self, node: SimNode, now: float) -> None:
        """The operator's `dormouse clear`: the node is asleep until heard from, and one that
        is back is heard from at once (online, idle)."""
        if node.state is not NodeState.FAILED:
            return
        if node.late:
            self._online(node, now)
        else:
            node.set_state(NodeState.ASLEEP, now)

    @staticmethod
    def _online(node: SimNode, now: float) -> None:
        node.set_state(NodeState.ONLINE, now)
        node.idle_since = now

    def _learn(self, name: str, seconds: float, shape: str) -> None:
        """A wake time measured: the nodes waking now get their timeouts from the new
        figures, as the daemon's power loop gives them (other nodes' estimates move when
        they next change)."""
        self._latencies.record(name, seconds, shape)
        for waking in self._book.waking():
            node = self._by_name[waking]
            learned = (
                self._latencies.quantile(waking, 0.95, node.kind.name),
                self._latencies.first_wakes(waking),
            )
            power = node.power
            if power is not None and (power.resume_p95_s, power.first_wakes) != learned:
                node.power = None
                self._power_dirty[waking] = None

    def _finish(self, data: tuple[str, int], now: float) -> None:
        task_id, index = data
        alloc = self._cluster.allocations[task_id]
        self._cluster.release(task_id)
        node = self._by_name[alloc.node]
        node.advance(now)
        node.used_cpus -= alloc.cpus
        node.used_gpus -= len(alloc.gpus)
        node.tasks -= 1
        node.changed()
        if node.tasks == 0:
            node.idle_since = now
        run = self.runs[index]
        run.finished += 1
        if run.finished == run.parts:
            run.end_s = now
            self._unfinished -= 1

    def _step(self, now: float) -> None:
        """One pass over the kept states: only nodes that changed since the last pass are
        put into them (the cluster before placing, the power book after the starts)."""
        for name in self._placement_dirty:
            self._cluster.put_node(self._snapshot(self._by_name[name]))
        self._placement_dirty.clear()
        cluster = self._cluster.snapshot() if self._record is not None else None
        jobs = self._ready(now)
        plan = self._place(jobs, now) if jobs else Plan()
        for assignment in plan.assignments:
            self._start(assignment, now)
        if not self._policy.sleep:
            return
        self._sync_power(now)
        waiting = _Waiting(self._pending, plan)
        wanted = wake_reasons(plan)
        recent = recent_sleeps(self._sleeps, now)
        is_wanted = partial(self._wanted, waiting)
        actions = tuple(self._book.decide(wanted, now, recent, is_wanted, pool=self._pool(now)))
        for action in actions:
            self._act(action, now)
        if any(a.kind == "fail" for a in actions):  # plan again without it, as the next pass would
            self._push(now, TICK, None)
        if self._record is not None and cluster is not None:
            powers = tuple(self._recorded_power(n, waiting) for n in self.nodes)
            self._record(Step(now, jobs, cluster, plan, powers, wanted, recent, actions))
        self._sync_power(now)  # the actions' nodes, for the next tick's timers
        if any(a.kind == "sleep" for a in actions):
            recent = recent_sleeps(self._sleeps, now)  # this pass's sleeps count too
        self._next_tick(now, bool(wanted), recent)

    def _pool(self, now: float) -> int | None:
        """With `spare = "forecast"`: the free GPUs to have awake now (None: fixed spare)."""
        if self._forecast is None:
            return None
        power = self._power
        wake_s = self._latencies.fleet_estimate(self._default_resume_s)
        self._forecast.advance(now)  # hours that ended with no submission count as quiet
        return self._forecast.spare_gpus(
            now, wake_s, least=power.spare_gpus, most=power.spare_max_gpus
        )

    def _sync_power(self, now: float) -> None:
        for name in self._power_dirty:
            self._book.put(self._node_power(self._by_name[name], now))
        self._power_dirty.clear()

    def _ready(self, now: float) -> tuple[Job, ...]:
        """Pending jobs less those held for a cheaper window (a pass is due at each release).
        A job run as parts is held or released whole: it ends with its last part, so a part
        started early gains nothing, and its room is booked for all its parts at once."""
        pending = [j for j, _ in self._pending.values()]
        if not self._holds.active:
            return tuple(pending)
        margin = self._latencies.fleet_estimate(self._default_resume_s)
        cluster = self._cluster  # its snapshot is built only if a hold needs the fleet
        wholes: dict[str, tuple[Job, int]] = {}
        for job, index in self._pending.values():
            whole = self._whole(job, index)
            wholes.setdefault(whole.id, (whole, index))
        ready, held = self._holds.split(
            [whole for whole, _ in wholes.values()],
            now,
            margin,
            lambda: fleet_of(cluster.snapshot()),
        )
        released = {wholes[job.id][1] for job in ready}
        self.outcome.held = self._holds.planned
        for hold in held.values():
            if hold.until not in self._release_at:
                self._release_at.add(hold.until)
                self._push(hold.until, TICK, None)
        return tuple(job for job, index in self._pending.values() if index in released)

    def _whole(self, part: Job, index: int) -> Job:
        """The job as holds see it: a part of a job run as parts stands for all of them."""
        parts = self.runs[index].parts
        if parts == 1:
            return part
        request = part.request
        whole = replace(request, cpus=request.cpus * parts, mem_bytes=request.mem_bytes * parts,
                        gpus=request.gpus * parts)  # fmt: skip
        return replace(part, id=f"{self.runs[index].trace.id}.all", request=whole)

    def _place(self, jobs: tuple[Job, ...], now: float) -> Plan:
        if self._policy.round_robin:
            return self._round_robin(jobs)
        return schedule(list(jobs), self._cluster, now)

    def _round_robin(self, jobs: tuple[Job, ...]) -> Plan:
        """The baseline: submit order, the next node in turn that fits."""
        free = dict(self._cluster.free)
        nodes, placed = tuple(self._cluster.nodes.values()), []
        for job in sorted(jobs, key=lambda j: (j.submitted_at, j.id)):
            for offset in range(len(nodes)):
                node = nodes[(self._turn + offset) % len(nodes)]
                if rejection(job.request, node, free[node.name]) is None:
                    gpus = assign_gpus(node, free[node.name], job.request.gpus)
                    free[node.name] = free[node.name].minus(
                        job.request.cpus, job.request.mem_bytes, gpus
                    )
                    placed.append(Assignment(job.id, node.name, gpus, 0.0, False))
                    self._turn = (self._turn + offset + 1) % len(nodes)
                    break
        return Plan(tuple(placed))

    def _snapshot(self, node: SimNode) -> NodeSnapshot:
        if node.snapshot is None:
            kind = node.kind
            node.snapshot = node_snapshot(
                node.name,
                node.state,
                kind.shape,
                connections=0,
                util_pct=100.0 * node.used_cpus / kind.cpus,
                resume_latency_s=self._latencies.estimate(
                    node.name, kind.resume_latency_s, kind.name
                ),
            )
        return node.snapshot

    def _start(self, assignment: Assignment, now: float) -> None:
        job, index = self._pending.pop(assignment.job_id)
        if self.runs[index].started + 1 == self.runs[index].parts:  # its last part
            self._holds.forget(self._whole(job, index).id)
        node = self._by_name[assignment.node]
        node.advance(now)
        request = job.request
        self._cluster.allocate(
            Allocation(
                job_id=job.id,
                node=node.name,
                cpus=request.cpus,
                mem_bytes=request.mem_bytes,
                gpus=assignment.gpus,
                ends_at=now + job.runtime_s,
            )
        )
        node.used_cpus += request.cpus
        node.used_gpus += len(assignment.gpus)
        node.tasks += 1
        node.idle_since = None
        node.changed()
        run = self.runs[index]
        run.started += 1
        if run.started == run.parts:
            run.start_s = now
        self._push(now + job.runtime_s, FINISH, (job.id, index))

    def _node_power(self, node: SimNode, now: float) -> NodePower:
        """Rebuilt when the node changed; whether a pending job wants it is asked of the nodes
        due to sleep only (`_wanted`)."""
        if node.power is None:
            usage = Usage(
                jobs=node.tasks,
                used_gpus=node.used_gpus,
                cpu_util_pct=100.0 if node.tasks else 0.0,
                gpu_util_pct=None,
            )
            node.power = node_power(
                node.name,
                node.state,
                node.state_since,
                gpus=node.kind.gpus,
                usage=usage,
                idle_before=node.idle_since,
                wanted=False,
                now=now,
                policy=self._power,
                resume_p95_s=self._latencies.quantile(node.name, 0.95, node.kind.name),
                first_wakes=self._latencies.first_wakes(node.name),
            )
            node.idle_since = node.power.idle_since
        return node.power

    def _wanted(self, waiting: _Waiting, power: NodePower) -> bool:
        return wanted_by(waiting.requests(), self._snapshot(self._by_name[power.name]))

    def _recorded_power(self, node: SimNode, waiting: _Waiting) -> NodePower:
        """What the pass saw of a node, `wanted` filled in where it could matter (a test
        replays `decide` over these)."""
        power = self._book.nodes[node.name]
        if node.state is NodeState.ONLINE and not node.tasks:
            return replace(power, wanted=self._wanted(waiting, power))
        return power

    def _act(self, action: Action, now: float) -> None:
        node = self._by_name[action.node]
        if action.kind == "sleep":
            node.set_state(NodeState.ASLEEP, now)  # suspend modelled as instant
            node.host_up = False
            node.toggles.append(now)
            self._sleeps.append(now)
            self.outcome.sleeps += 1
        elif action.kind == "wake":
            node.set_state(NodeState.WAKING, now)
            node.toggles.append(now)
            node.wake_id += 1
            self.outcome.wakes += 1
            kind = node.kind
            node.host_up = self._rng.random() >= kind.wake_failure
            if node.host_up:
                jitter = self._rng.uniform(-kind.resume_jitter_s, kind.resume_jitter_s)
                back = now + max(0.0, kind.resume_latency_s + jitter)
                self._push(back, RESUME, (node.name, node.wake_id, now))
        else:
            node.set_state(NodeState.FAILED, now)
            self.outcome.failures += 1
            self._push(now + self._clear_after_s, CLEAR, node.name)

    def _next_tick(self, now: float, wakes_wanted: bool, recent: tuple[float, ...]) -> None:
        """The next time the power policy could decide otherwise with nothing else happening
        (`PowerBook.next_due`, with this pass's sleeps in `recent`); one tick is pending at a
        time, the earliest. A forecast pool may also move when its window enters an hour."""
        later = self._book.next_due(now, wakes_wanted, recent)
        if self._forecast is not None:
            wake_s = self._latencies.fleet_estimate(self._default_resume_s)
            moved = self._forecast.next_change(now, wake_s)
            later = moved if later is None else min(later, moved)
        if (later is not None and later < self._tick_at) or self._tick_at <= now:
            self._tick_at = math.inf if later is None else later
            if self._tick_at < math.inf:
                self._push(self._tick_at, TICK, None)


class _Waiting:
    """The requests of the jobs a plan left waiting, listed only if a node due to sleep asks
    (most passes sleep nothing)."""

    def __init__(self, pending: dict[str, tuple[Job, int]], plan: Plan) -> None:
        self._pending, self._plan = pending, plan
        self._requests: list[Request] | None = None

    def requests(self) -> list[Request]:
        if self._requests is None:
            self._requests = [self._pending[w.job_id][0].request for w in self._plan.waiting]
        return self._requests


def _parts(job: TraceJob, largest_gpus: int) -> int:
    if largest_gpus and job.gpus > largest_gpus:
        return math.ceil(job.gpus / largest_gpus)
    return 1


def _job(trace: TraceJob, parts: int, part: int, *, fifo: bool) -> Job:
    return Job(
        id=f"{trace.id}.{part}",
        request=Request(
            cpus=math.ceil(trace.cpus / parts),
            mem_bytes=math.ceil(trace.mem_bytes / parts),
            gpus=math.ceil(trace.gpus / parts),
        ),
        runtime_s=trace.runtime_s,
        submitted_at=trace.submit_s,
        deadline=None if fifo else trace.deadline_s,
    )
