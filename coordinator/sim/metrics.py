"""From a simulation's outcome to the figures `dormouse simulate` reports, pure."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from coordinator.power.defer import cheapest_start
from coordinator.power.report import weighed_hits_pct
from coordinator.power.tariff import Rate
from coordinator.sim.engine import JobRun, Outcome, SimNode
from coordinator.sim.fleet import NodeType
from coordinator.sim.trace import TraceJob
from shared.units import J_PER_KWH


@dataclass(frozen=True, slots=True)
class Summary:
    jobs: int
    completed: int
    deadline_hits_pct: float | None
    deadline_hits_gpu_h_pct: float | None  # the same weighed by GPU-hours (None: no GPU jobs)
    mean_wait_s: float | None
    p95_wait_s: float | None
    energy_kwh: float
    energy_cost: float | None  # at the tariff (or the flat price)
    co2_kg: float | None  # with a carbon series
    lower_bound_kwh: float
    sleeps: int
    wakes: int
    failures: int
    wrongly_failed: int
    held: int
    max_toggles_per_node_hour: int
    span_h: float


def summarise(outcome: Outcome, end: float | None = None) -> Summary:
    """`end` extends the energy to a common horizon (the latest end of the runs compared):
    every node is idle or asleep after its run's last job."""
    end = outcome.end if end is None else max(end, outcome.end)
    for node in outcome.nodes:
        node.advance(max(end, node.last_t))
    done = [r for r in outcome.jobs if r.end_s is not None]
    with_deadline = [r for r in outcome.jobs if r.trace.deadline_s is not None]
    hits = sum(1 for r in with_deadline if _met(r.end_s, r.trace.deadline_s))
    waits = sorted(r.start_s - r.trace.submit_s for r in done if r.start_s is not None)
    return Summary(
        jobs=len(outcome.jobs),
        completed=len(done),
        deadline_hits_pct=100.0 * hits / len(with_deadline) if with_deadline else None,
        deadline_hits_gpu_h_pct=gpu_hour_hits_pct(with_deadline),
        mean_wait_s=sum(waits) / len(waits) if waits else None,
        p95_wait_s=waits[min(len(waits) - 1, int(0.95 * len(waits)))] if waits else None,
        energy_kwh=sum(n.energy_j for n in outcome.nodes) / J_PER_KWH,
        energy_cost=sum(n.cost for n in outcome.nodes) if outcome.priced else None,
        co2_kg=sum(n.co2_g for n in outcome.nodes) / 1000 if outcome.carbon else None,
        lower_bound_kwh=lower_bound_j(outcome, end) / J_PER_KWH,
        sleeps=outcome.sleeps,
        wakes=outcome.wakes,
        failures=outcome.failures,
        wrongly_failed=outcome.wrongly_failed,
        held=outcome.held,
        max_toggles_per_node_hour=max((most_in_an_hour(n) for n in outcome.nodes), default=0),
        span_h=(end - outcome.start) / 3600,
    )


def lower_bound_j(outcome: Outcome, end: float) -> float:
    """What an oracle with instant wakes would use: each job's share of a fully busy node for
    its runtime, and sleep power for all other node-time."""
    kinds = {n.kind for n in outcome.nodes}
    kind = max(kinds, key=lambda k: k.gpus) if kinds else None
    if kind is None:
        return 0.0
    busy_node_s = busy_j = 0.0
    for run in outcome.jobs:
        job = run.trace
        share = _share(job, kind)
        busy_node_s += share * job.runtime_s
        busy_j += share * job.runtime_s * kind.busy_w
    node_s = sum(1 for _ in outcome.nodes) * (end - outcome.start)
    return busy_j + max(0.0, node_s - busy_node_s) * kind.asleep_w


@dataclass(frozen=True, slots=True)
class HoldBound:
    """The jobs' own energy (each its share of a busy node) priced at the rate: started at
    submission, and each at its cheapest start before its deadline. Same units as a run's
    `energy_cost` (or gCO2 / 1000 as `co2_kg`, for a carbon rate)."""

    at_once: float
    best: float

    @property
    def pct(self) -> float:
        """The most holding can lower the jobs' own energy price, in percent."""
        return 100.0 * (1 - self.best / self.at_once) if self.at_once > 0 else 0.0

    @property
    def room(self) -> float:
        """What holding could take off, in the same units."""
        return self.at_once - self.best

    def captured_pct(self, value: float | None, twin: float | None) -> float | None:
        """A policy's cut against its twin holding nothing, as a share of the bound: both in
        money (or kg), not a ratio of percentages, whose bases differ (the fleet's whole
        energy, idle and asleep included, against the jobs' own)."""
        if value is None or twin is None or self.room <= 0:
            return None
        return 100.0 * (twin - value) / self.room


def hold_bound(
    jobs: Sequence[TraceJob], rate: Rate, kind: NodeType, scale: float = 1.0
) -> HoldBound:
    """Every job with a deadline started at its cheapest moment that still meets it, with
    room for all and instant wakes: no start-time policy takes more off the jobs' energy
    price. Each job weighs its share of a `kind` node at busy power, as the lower bound on
    energy does (`lower_bound_j`); `scale` turns J x rate into the report's units."""
    now = best = 0.0
    for job in jobs:
        if job.runtime_s <= 0:
            continue
        watts = _share(job, kind) * kind.busy_w
        start, runtime = job.submit_s, job.runtime_s
        at_once = rate.integral(start, start + runtime)
        if job.deadline_s is not None:
            start = cheapest_start(rate, start, job.deadline_s - runtime, runtime)
        now += watts * at_once
        best += watts * rate.integral(start, start + runtime)
    return HoldBound(now * scale / J_PER_KWH, best * scale / J_PER_KWH)


def gpu_hour_hits_pct(runs: Sequence[JobRun]) -> float | None:
    """Deadline hits weighed by each job's GPU-hours, so one large job met is not outweighed
    by many small ones missed, nor the reverse; None when no job with a deadline has GPUs."""
    return weighed_hits_pct(
        (r.trace.gpus * r.trace.runtime_s, _met(r.end_s, r.trace.deadline_s)) for r in runs
    )


def most_in_an_hour(node: SimNode) -> int:
    """The most sleeps and wakes of the node within any hour."""
    times = node.toggles
    return max((bisect.bisect_left(times, t + 3600.0) - i for i, t in enumerate(times)), default=0)


def _share(job: TraceJob, kind: NodeType) -> float:
    """The share of a `kind` node the job takes: by GPUs, or by CPUs for a CPU job."""
    return job.gpus / kind.gpus if kind.gpus and job.gpus else job.cpus / kind.cpus


def _met(end_s: float | None, deadline_s: float | None) -> bool:
    return end_s is not None and deadline_s is not None and end_s <= deadline_s
