"""Chargeback, pure: who spent the fleet's money, and how well they used what they held.

A job is charged, for the part of its run inside the window:
* its share of its node's hardware amortisation and fixed cost per hour: the share of the
  node's GPUs it held (of its CPUs for a job without GPUs), from when the node first
  appeared;
* its own measured energy (its agent charges it its GPUs and its CPU share of the host,
  `shared.jobenergy`), at the tariff in force over its run.

What no job held (idle and sleeping nodes, the unallocated part of busy ones) is the fleet's:
`idle_cost = "fleet"` reports it as a row of its own, `"shared"` spreads it over the rows in
proportion to what each was charged. Either way the rows add up to the fleet's cost.

GPU-hours used = GPU-hours allocated x the job's measured GPU utilisation; efficiency = used /
allocated, over the jobs whose utilisation is known (a running job's is known when it ends).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from coordinator.power.energy import clip, length
from coordinator.power.report import CostModel, JobUse, NodeReport, NodeUse, owned_s
from shared.units import J_PER_KWH

BY = ("account", "user", "node", "job")
IDLE_COST = ("fleet", "shared")
IDLE = "(idle)"  # the row of what no job held, with idle_cost = "fleet"
PARTS = ("energy", "hardware", "fixed", "idle")


@dataclass(frozen=True, slots=True)
class Cost:
    energy: float = 0.0
    hardware: float = 0.0
    fixed: float = 0.0
    idle: float = 0.0  # the row's part of what no job held (idle_cost = "shared")

    @property
    def total(self) -> float:
        return self.energy + self.hardware + self.fixed + self.idle

    def __add__(self, other: Cost) -> Cost:
        return Cost(*(getattr(self, p) + getattr(other, p) for p in PARTS))


@dataclass(frozen=True, slots=True)
class Charge:
    """One job's bill for the window."""

    job: str
    account: str
    user: str
    node: str
    gpu_h_allocated: float
    gpu_h_used: float | None  # None: its utilisation is not known (yet)
    kwh: float
    cost: Cost


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    jobs: int
    gpu_h_allocated: float
    gpu_h_used: float
    gpu_h_measured: float  # the allocated GPU-hours whose utilisation is known
    kwh: float
    cost: Cost

    @property
    def efficiency(self) -> float | None:
        return self.gpu_h_used / self.gpu_h_measured if self.gpu_h_measured else None


def held_share(job: JobUse, node: NodeUse) -> float:
    """The share of the node's fixed costs a job carries: its GPUs of the node's, else its
    CPUs of the node's (1 when the node's size is unknown)."""
    if job.gpus and node.gpus:
        return min(1.0, job.gpus / node.gpus)
    if node.cpus:
        return min(1.0, job.cpus / node.cpus)
    return 1.0


def charge(job: JobUse, node: NodeUse, model: CostModel, start: float, end: float) -> Charge:
    ran = (job.started_at, job.finished_at or end)
    owned_from = end - owned_s(node, start, end)
    inside = clip([ran], owned_from, end)
    hours = length(inside) / 3600
    whole_s = max(ran[1] - ran[0], 1e-9)
    fraction = min(1.0, length(clip([ran], start, end)) / whole_s)
    kwh = (job.energy_j or 0.0) / J_PER_KWH * fraction
    priced = clip([ran], start, end)
    price = model.price(*priced[0]) if priced else model.price_kwh
    share = held_share(job, node)
    allocated = job.gpus * hours
    return Charge(
        job=job.id,
        account=job.account,
        user=job.user,
        node=node.name,
        gpu_h_allocated=allocated,
        gpu_h_used=None if job.gpu_util_pct is None else allocated * job.gpu_util_pct / 100,
        kwh=kwh,
        cost=Cost(
            energy=kwh * price,
            hardware=model.hardware_per_hour(node.name) * share * hours,
            fixed=model.fixed_per_hour(node.name) * share * hours,
        ),
    )


def charges(nodes: Sequence[NodeUse], model: CostModel, start: float, end: float) -> list[Charge]:
    """Every job that ran in [start, end], charged for its part of the window."""
    return [
        charge(j, n, model, start, end)
        for n in nodes
        for j in n.jobs
        if j.started_at < end and (j.finished_at is None or j.finished_at > start)
    ]


def unheld(reports: Iterable[NodeReport], bills: Iterable[Charge]) -> tuple[Cost, float]:
    """The fleet's cost no job carried, and its kWh: each node's cost less its jobs'
    charges (never below 0: a job priced over its run may round past its node's buckets)."""
    charged: dict[str, Cost] = defaultdict(Cost)
    kwh: dict[str, float] = defaultdict(float)
    for bill in bills:
        charged[bill.node] += bill.cost
        kwh[bill.node] += bill.kwh
    left, left_kwh = Cost(), 0.0
    for n in reports:
        took = charged.get(n.node, Cost())
        left += Cost(
            energy=max(0.0, n.energy_cost - took.energy),
            hardware=max(0.0, n.hardware_cost - took.hardware),
            fixed=max(0.0, n.fixed_cost - took.fixed),
        )
        left_kwh += max(0.0, n.kwh - kwh.get(n.node, 0.0))
    return left, left_kwh


def key_of(by: str) -> Callable[[Charge], str]:
    return {
        "account": lambda c: c.account,
        "user": lambda c: c.user,
        "node": lambda c: c.node,
        "job": lambda c: c.job,
    }[by]


def rows(
    bills: Sequence[Charge], by: str, idle: tuple[Cost, float], idle_cost: str = "fleet"
) -> list[Row]:
    """The bills summed by `by`, most expensive first, and what no job held: its own row
    (`fleet`) or spread over the rows by their cost (`shared`)."""
    key = key_of(by)
    grouped: dict[str, list[Charge]] = defaultdict(list)
    for bill in bills:
        grouped[key(bill)].append(bill)
    found = [_summed(name, group) for name, group in grouped.items()]
    left, left_kwh = idle
    direct = sum(r.cost.total for r in found)
    if idle_cost == "shared" and direct > 0:
        found = [_with_idle(r, left.total * r.cost.total / direct) for r in found]
    elif left.total > 0 or left_kwh > 0:
        found.append(Row(IDLE, 0, 0.0, 0.0, 0.0, left_kwh, left))
    return sorted(found, key=lambda r: (-r.cost.total, r.key))


def _with_idle(row: Row, idle: float) -> Row:
    return replace(row, cost=replace(row.cost, idle=idle))


def _summed(key: str, group: Sequence[Charge]) -> Row:
    measured = [b for b in group if b.gpu_h_used is not None]
    return Row(
        key=key,
        jobs=len(group),
        gpu_h_allocated=sum(b.gpu_h_allocated for b in group),
        gpu_h_used=sum(b.gpu_h_used or 0.0 for b in measured),
        gpu_h_measured=sum(b.gpu_h_allocated for b in measured),
        kwh=sum(b.kwh for b in group),
        cost=sum((b.cost for b in group), Cost()),
    )


def as_json(row: Row, by: str) -> dict[str, object]:
    """A row as `dormouse report --by ... --json` and `GET /api/v1/report?by=` give it."""
    cost = {p: getattr(row.cost, p) for p in PARTS} | {"total": row.cost.total}
    return {
        by: row.key,
        "jobs": row.jobs,
        "gpu_h_allocated": row.gpu_h_allocated,
        "gpu_h_used": row.gpu_h_used,
        "efficiency": row.efficiency,
        "kwh": row.kwh,
        "cost": cost,
    }


@dataclass(frozen=True, slots=True)
class Utilisation:
    """U as the seeds define it, for one label value (or the fleet): busy / awake, and busy /
    total (total: hours owned in the window)."""

    group: str
    nodes: int
    busy_h: float
    awake_h: float
    total_h: float

    @property
    def of_awake_pct(self) -> float | None:
        return 100 * min(self.busy_h, self.awake_h) / self.awake_h if self.awake_h else None

    @property
    def of_total_pct(self) -> float | None:
        return 100 * self.busy_h / self.total_h if self.total_h else None


def utilisation(
    reports: Sequence[NodeReport], labels: Mapping[str, Mapping[str, str]]
) -> list[Utilisation]:
    """The fleet's, then one per label `key=value` any node carries."""
    groups: dict[str, list[NodeReport]] = defaultdict(list)
    for n in reports:
        groups["fleet"].append(n)
        for k, v in sorted(labels.get(n.node, {}).items()):
            groups[f"{k}={v}"].append(n)
    return [
        Utilisation(
            group=name,
            nodes=len(members),
            busy_h=sum(n.busy_h for n in members),
            awake_h=sum(n.awake_h for n in members),
            total_h=sum(n.owned_h for n in members),
        )
        for name, members in sorted(groups.items(), key=lambda kv: (kv[0] != "fleet", kv[0]))
    ]
