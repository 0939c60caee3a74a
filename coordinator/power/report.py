"""`dormouse report`, pure: energy, time and money per node, per job and for the fleet.

Cost is the whole model, not only energy: kWh x price plus each node's hardware amortisation
(purchase price over its life) and fixed cost per hour (licences, people, operations) from
when it first appeared, asleep or not. Energy saved by
sleeping = asleep hours x (the node's idle power, learned from its samples while no job ran,
less sleep power). A job's energy is the node's energy over its run (the agent measures it)
times the share of the node it held: the largest of its CPU, GPU and memory fractions.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from coordinator.power.energy import (
    Buckets,
    Interval,
    UsageBucket,
    asleep_intervals,
    clip,
    length,
)
from coordinator.power.tariff import Rate
from shared.units import J_PER_KWH


@dataclass(frozen=True, slots=True, kw_only=True)
class JobUse:
    id: str
    name: str
    node: str
    cpus: int
    gpus: int
    mem_bytes: int
    started_at: float
    finished_at: float | None
    energy_j: float | None
    submitted_at: float | None = None
    account: str = ""
    user: str = ""
    gpu_util_pct: float | None = None  # its GPUs' mean utilisation over its run


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeUse:
    name: str
    cpus: int = 0
    gpus: int = 0
    mem_bytes: int = 0
    buckets: Buckets = field(default_factory=lambda: Buckets.of([]))  # oldest first
    power_events: Sequence[tuple[float, str]] = ()  # (ts, kind), oldest first
    jobs: Sequence[JobUse] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    first_seen: float | None = None  # fixed costs and amortisation run from here


@dataclass(frozen=True, slots=True, kw_only=True)
class CostModel:
    price_kwh: float
    fixed_per_hour: Callable[[str], float] = lambda _: 0.0  # node name -> cost per hour
    hardware_per_hour: Callable[[str], float] = lambda _: 0.0  # purchase price / life
    sleep_power_w: float = 5.0
    idle_power_w: float = 100.0
    max_gap_s: float = 30.0
    tariff: Rate | None = None  # on the epoch clock; None: price_kwh at all times
    carbon: Rate | None = None  # gCO2 per kWh, on the epoch clock

    def price(self, t0: float, t1: float) -> float:
        """The mean price per kWh from t0 to t1."""
        return self.price_kwh if self.tariff is None else self.tariff.mean(t0, t1)


@dataclass(frozen=True, slots=True)
class NodeReport:
    node: str
    kwh: float
    energy_cost: float
    fixed_cost: float
    cost: float
    awake_h: float
    asleep_h: float
    busy_h: float
    utilisation_pct: float | None
    idle_power_w: float
    saved_kwh: float
    metered: bool = True  # it reported power or energy; else its kWh is 0, not measured
    idle_assumed: bool = False  # idle power is `[cost] idle_power_w`, not learned
    co2_kg: float | None = None  # with a carbon series
    hardware_cost: float = 0.0
    owned_h: float = 0.0  # hours of the window since the node first appeared


@dataclass(frozen=True, slots=True)
class JobReport:
    id: str
    name: str
    node: str
    share: float
    kwh: float | None
    cost: float | None
    gpu_h: float
    cpu_h: float
    co2_kg: float | None = None
    saved_cost: float | None = None  # against starting at its submission (a hold's gain)
    saved_co2_kg: float | None = None
    energy_j: float | None = None  # the job's own, as its agent charged it
    started_at: float | None = None
    finished_at: float | None = None


@dataclass(frozen=True, slots=True)
class Totals:
    kwh: float
    cost: float
    energy_cost: float
    fixed_cost: float
    saved_kwh: float
    saved_cost: float
    awake_h: float
    asleep_h: float
    busy_gpu_h: float
    busy_cpu_h: float
    gpu_h_per_cost: float | None
    cpu_h_per_cost: float | None
    unmetered_nodes: int = 0
    assumed_idle_nodes: int = 0
    co2_kg: float | None = None
    saved_by_holds_cost: float = 0.0  # the jobs' cost against starting each at submission
    saved_by_holds_co2_kg: float | None = None
    hardware_cost: float = 0.0


@dataclass(frozen=True, slots=True)
class Deadlines:
    """The jobs with a deadline that ended in the window: the share that met it, by count
    and weighed by GPU-hours (None: no such job, or none with GPUs)."""

    jobs: int
    hits_pct: float | None
    hits_gpu_h_pct: float | None


def weighed_hits_pct(jobs: Iterable[tuple[float, bool]]) -> float | None:
    """Hits weighed by each job's weight (its GPU-hours): one large job met is not
    outweighed by many small ones missed, nor the reverse. None when nothing weighs."""
    total = met = 0.0
    for weight, hit in jobs:
        total += weight
        met += weight if hit else 0.0
    return 100.0 * met / total if total > 0 else None


def deadline_hits(ended: Sequence[tuple[float, bool]]) -> Deadlines:
    """`ended`: (GPU-hours, met) of each job with a deadline."""
    hits = sum(1 for _, met in ended if met)
    return Deadlines(
        jobs=len(ended),
        hits_pct=100.0 * hits / len(ended) if ended else None,
        hits_gpu_h_pct=weighed_hits_pct(ended),
    )


@dataclass(frozen=True, slots=True)
class Report:
    start: float
    end: float
    nodes: list[NodeReport]
    jobs: list[JobReport]
    totals: Totals
    budget: Budget | None = field(default=None)
    caveats: tuple[str, ...] = ()  # what a reader must know before trusting the figures
    deadlines: Deadlines | None = None


@dataclass(frozen=True, slots=True)
class Budget:
    limit: float
    period: str
    period_start: float
    period_end: float
    spent: float
    projected: float

    @property
    def over(self) -> bool:
        """Over when the projected end-of-period figure passes the limit."""
        return self.projected > self.limit


def idle_power_w(
    buckets: Buckets | Sequence[UsageBucket], busy: Sequence[Interval]
) -> float | None:
    """Mean power of the buckets no job ran in (nor began or ended in): what the node burns
    doing nothing."""
    columns = buckets if isinstance(buckets, Buckets) else Buckets.of(buckets)
    idle = np.ones(len(columns), bool)
    for a, z in busy:
        idle &= ~((a <= columns.end) & (columns.start <= z))
    count = float(columns.power_n[idle].sum())
    return float(columns.power_sum_w[idle].sum()) / count if count else None


def node_report(node: NodeUse, model: CostModel, start: float, end: float) -> NodeReport:
    """From the node's buckets begun in [start, end] (a sample at `end` opens one); each
    bucket's energy priced at the tariff (and carbon) of its middle (buckets are minutes
    or hours, tariffs' steps an hour or more)."""
    b = node.buckets
    buckets = b.where((start <= b.start) & (b.start <= end))
    rates = [r for r in (model.tariff, model.carbon) if r is not None]
    energy_j = float(buckets.energy_j.sum())
    awake_s = float(buckets.awake_s.sum())
    middles = (buckets.start + buckets.end) / 2
    weighed = [float((buckets.energy_j * r.at_each(middles)).sum()) for r in rates]
    weighted = dict(zip(("tariff", "carbon"), _present(model, weighed), strict=True))
    asleep = length(clip(asleep_intervals(node.power_events, end), start, end))
    busy = clip(((j.started_at, j.finished_at or end) for j in node.jobs), start, end)
    learned_w = idle_power_w(buckets, busy)
    idle_w = model.idle_power_w if learned_w is None else learned_w
    metered = bool(buckets.metered.any() or buckets.power_n.any())
    kwh = energy_j / J_PER_KWH
    owned_h = owned_s(node, start, end) / 3600
    fixed = model.fixed_per_hour(node.name) * owned_h
    hardware = model.hardware_per_hour(node.name) * owned_h
    busy_s = length(busy)
    priced = weighted["tariff"]
    energy_cost = kwh * model.price_kwh if priced is None else priced / J_PER_KWH
    co2 = weighted["carbon"]
    return NodeReport(
        node=node.name,
        kwh=kwh,
        energy_cost=energy_cost,
        fixed_cost=fixed,
        cost=energy_cost + fixed + hardware,
        awake_h=awake_s / 3600,
        asleep_h=asleep / 3600,
        busy_h=busy_s / 3600,
        utilisation_pct=100 * min(busy_s, awake_s) / awake_s if awake_s else None,
        idle_power_w=idle_w,
        saved_kwh=asleep / 3600 * max(0.0, idle_w - model.sleep_power_w) / 1000,
        metered=metered,
        idle_assumed=learned_w is None,
        co2_kg=None if co2 is None else co2 / J_PER_KWH / 1000,
        hardware_cost=hardware,
        owned_h=owned_h,
    )


def owned_s(node: NodeUse, start: float, end: float) -> float:
    """Seconds of [start, end] since the node first appeared: a node added this morning is
    not charged a week of fixed costs."""
    since = start if node.first_seen is None else max(start, node.first_seen)
    return max(0.0, end - since)


def _present(model: CostModel, weighted: Sequence[float]) -> list[float | None]:
    """`weighted` back in (tariff, carbon) order, None for the one not given."""
    given = iter(weighted)
    return [None if r is None else next(given) for r in (model.tariff, model.carbon)]


def share(job: JobUse, node: NodeUse) -> float:
    fractions = [
        job.cpus / node.cpus if node.cpus else 0.0,
        job.gpus / node.gpus if node.gpus else 0.0,
        job.mem_bytes / node.mem_bytes if node.mem_bytes else 0.0,
    ]
    return min(1.0, max(fractions)) or 1.0


def job_report(job: JobUse, node: NodeUse, model: CostModel, start: float, end: float) -> JobReport:
    held = share(job, node)
    kwh = None if job.energy_j is None else job.energy_j / J_PER_KWH  # the job's own (agent)
    ran_h = length(clip([(job.started_at, job.finished_at or end)], start, end)) / 3600
    ran = (job.started_at, job.finished_at or end)
    at_once = (
        ran if job.submitted_at is None else (job.submitted_at, job.submitted_at + ran[1] - ran[0])
    )
    carbon = model.carbon
    return JobReport(
        id=job.id,
        name=job.name,
        node=job.node,
        share=held,
        kwh=kwh,
        cost=None if kwh is None else kwh * model.price(*ran),
        gpu_h=job.gpus * ran_h,
        cpu_h=job.cpus * ran_h,
        co2_kg=None if kwh is None or carbon is None else kwh * carbon.mean(*ran) / 1000,
        saved_cost=None if kwh is None else kwh * (model.price(*at_once) - model.price(*ran)),
        saved_co2_kg=None
        if kwh is None or carbon is None
        else kwh * (carbon.mean(*at_once) - carbon.mean(*ran)) / 1000,
        energy_j=job.energy_j,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def report(nodes: Sequence[NodeUse], model: CostModel, start: float, end: float) -> Report:
    per_node = [node_report(n, model, start, end) for n in nodes]
    per_job = [
        job_report(j, n, model, start, end)
        for n in nodes
        for j in n.jobs
        if j.started_at < end and (j.finished_at is None or j.finished_at >= start)
    ]
    cost = sum(n.cost for n in per_node)
    gpu_h, cpu_h = sum(j.gpu_h for j in per_job), sum(j.cpu_h for j in per_job)
    saved = sum(n.saved_kwh for n in per_node)
    totals = Totals(
        kwh=sum(n.kwh for n in per_node),
        cost=cost,
        energy_cost=sum(n.energy_cost for n in per_node),
        fixed_cost=sum(n.fixed_cost for n in per_node),
        hardware_cost=sum(n.hardware_cost for n in per_node),
        saved_kwh=saved,
        saved_cost=saved * model.price(start, end),
        awake_h=sum(n.awake_h for n in per_node),
        asleep_h=sum(n.asleep_h for n in per_node),
        busy_gpu_h=gpu_h,
        busy_cpu_h=cpu_h,
        gpu_h_per_cost=gpu_h / cost if cost else None,
        cpu_h_per_cost=cpu_h / cost if cost else None,
        unmetered_nodes=sum(1 for n in per_node if not n.metered),
        assumed_idle_nodes=sum(1 for n in per_node if n.idle_assumed and n.asleep_h > 0),
        co2_kg=None if model.carbon is None else sum(n.co2_kg or 0.0 for n in per_node),
        saved_by_holds_cost=sum(j.saved_cost or 0.0 for j in per_job),
        saved_by_holds_co2_kg=None
        if model.carbon is None
        else sum(j.saved_co2_kg or 0.0 for j in per_job),
    )
    return Report(start, end, per_node, per_job, totals, caveats=caveats(totals, per_node, model))


def caveats(totals: Totals, nodes: Sequence[NodeReport], model: CostModel) -> tuple[str, ...]:
    """Energy not measured, savings resting on an assumed idle power: said with the figures,
    so 0 kWh beside a saving is not read as a measurement."""
    said = []
    if totals.unmetered_nodes:
        said.append(
            f"{totals.unmetered_nodes} of {len(nodes)} nodes have no power sensor (RAPL or "
            "NVML): their energy is not measured and counts as 0 kWh"
        )
    if totals.assumed_idle_nodes:
        said.append(
            f"saved kWh of {totals.assumed_idle_nodes} nodes is estimated from the assumed "
            f"idle power ([cost] idle_power_w = {model.idle_power_w:g} W), not from their "
            "own idle samples"
        )
    return tuple(said)


def period_bounds(period: str, now: float) -> tuple[float, float]:
    """The current budget period (UTC): this day, this ISO week, or this month."""
    today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        first, days = today, 1
    elif period == "week":
        first, days = today - timedelta(days=today.weekday()), 7
    else:
        first = today.replace(day=1)
        days = calendar.monthrange(first.year, first.month)[1]
    return first.timestamp(), (first + timedelta(days=days)).timestamp()


def budget(
    nodes: Sequence[NodeUse], model: CostModel, limit: float, period: str, now: float
) -> Budget:
    """Spent so far this period, and that pace carried to the period's end."""
    first, last = period_bounds(period, now)
    spent = report(nodes, model, first, now).totals.cost
    elapsed = max(now - first, 1.0)
    return Budget(limit, period, first, last, spent, spent * (last - first) / elapsed)
