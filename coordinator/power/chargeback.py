"""Chargeback, pure: who spent the fleet's money, and how well they used what they held.

A job is charged, for the part of its run inside the window:
* its share of its node's hardware amortisation and fixed cost per hour: the share of the
  node's GPUs it held (of its CPUs for a job without GPUs), from when the node first
  appeared;
* its own measured energy (its agent charges it its GPUs and its CPU share of the host,
  `shared.jobenergy`), in proportion to the part of its run inside the window, at the mean
  tariff over that part.

What no job held (idle and sleeping nodes, the unallocated part of busy ones) is the fleet's:
`idle_cost = "fleet"` reports it as a row of its own, `"shared"` spreads it over the rows in
proportion to what each was charged. Either way the rows add up to the fleet's cost.

GPU-hours used = GPU-hours allocated x the job's measured GPU utilisation; efficiency = used /
allocated, over the jobs whose utilisation is known (a running job's is known when it ends).

Columns, not objects: a month of a large fleet is 100,000 jobs, charged in a few numpy
operations (`Jobs`, `Fleet` and `Charges` hold one array per field).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from coordinator.power.report import CostModel, NodeUse, owned_s
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


@dataclass(frozen=True, slots=True)
class Fleet:
    """One entry per node: its size, costs per hour and energy in the window."""

    names: list[str]
    gpus: np.ndarray
    cpus: np.ndarray
    owned_h: np.ndarray  # hours of the window since it first appeared
    owned_from: np.ndarray
    hardware_per_h: np.ndarray
    fixed_per_h: np.ndarray
    kwh: np.ndarray
    energy_cost: np.ndarray
    awake_h: np.ndarray


@dataclass(frozen=True, slots=True)
class Jobs:
    """One entry per job that ran in the window; `node` indexes `Fleet`, a running job's
    `end` is the window's end, unknown energy and utilisation are NaN."""

    node: np.ndarray
    start: np.ndarray
    end: np.ndarray
    energy_j: np.ndarray
    gpus: np.ndarray
    cpus: np.ndarray
    util_pct: np.ndarray


@dataclass(frozen=True, slots=True)
class Charges:
    """One entry per job, as `Jobs`; `gpu_h_used` NaN where its utilisation is unknown."""

    gpu_h_allocated: np.ndarray
    gpu_h_used: np.ndarray
    kwh: np.ndarray
    energy: np.ndarray
    hardware: np.ndarray
    fixed: np.ndarray


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


def fleet_of(nodes: Sequence[NodeUse], model: CostModel, start: float, end: float) -> Fleet:
    """Each node's energy from its buckets begun in [start, end] (priced at the tariff of
    each bucket's middle, as `power.report` does) and its costs per hour."""
    kwh, energy_cost, awake_h = [], [], []
    for node in nodes:
        b = node.buckets
        buckets = b.where((start <= b.start) & (b.start <= end))
        joules = float(buckets.energy_j.sum())
        if model.tariff is None:
            priced = joules * model.price_kwh
        else:
            priced = float(
                (buckets.energy_j * model.tariff.at_each((buckets.start + buckets.end) / 2)).sum()
            )
        kwh.append(joules / J_PER_KWH)
        energy_cost.append(priced / J_PER_KWH)
        awake_h.append(float(buckets.awake_s.sum()) / 3600)
    owned = np.array([owned_s(n, start, end) for n in nodes], np.float64)
    return Fleet(
        names=[n.name for n in nodes],
        gpus=np.array([n.gpus for n in nodes], np.float64),
        cpus=np.array([n.cpus for n in nodes], np.float64),
        owned_h=owned / 3600,
        owned_from=end - owned,
        hardware_per_h=np.array([model.hardware_per_hour(n.name) for n in nodes], np.float64),
        fixed_per_h=np.array([model.fixed_per_hour(n.name) for n in nodes], np.float64),
        kwh=np.array(kwh, np.float64),
        energy_cost=np.array(energy_cost, np.float64),
        awake_h=np.array(awake_h, np.float64),
    )


def jobs_of(nodes: Sequence[NodeUse], start: float, end: float, by: str) -> tuple[Jobs, list[str]]:
    """The jobs of `nodes` that ran in [start, end], as columns, and each one's key of `by`."""
    found = [
        (i, j)
        for i, n in enumerate(nodes)
        for j in n.jobs
        if j.started_at < end and (j.finished_at is None or j.finished_at > start)
    ]
    nan = float("nan")
    key = {
        "account": lambda i, j: j.account,
        "user": lambda i, j: j.user,
        "job": lambda i, j: j.id,
        "node": lambda i, j: nodes[i].name,
    }[by]
    return Jobs(
        node=np.array([i for i, _ in found], np.int64),
        start=np.array([j.started_at for _, j in found], np.float64),
        end=np.array([j.finished_at or end for _, j in found], np.float64),
        energy_j=np.array([nan if j.energy_j is None else j.energy_j for _, j in found]),
        gpus=np.array([j.gpus for _, j in found], np.float64),
        cpus=np.array([j.cpus for _, j in found], np.float64),
        util_pct=np.array([nan if j.gpu_util_pct is None else j.gpu_util_pct for _, j in found]),
    ), [key(i, j) for i, j in found]


def held_share(jobs: Jobs, fleet: Fleet) -> np.ndarray:
    """The share of its node's fixed costs each job carries: its GPUs of the node's, else its
    CPUs of the node's (1 when the node's size is unknown)."""
    node_gpus, node_cpus = fleet.gpus[jobs.node], fleet.cpus[jobs.node]
    by_gpus = jobs.gpus / np.where(node_gpus > 0, node_gpus, 1.0)
    by_cpus = jobs.cpus / np.where(node_cpus > 0, node_cpus, 1.0)
    share = np.where(
        (jobs.gpus > 0) & (node_gpus > 0), by_gpus, np.where(node_cpus > 0, by_cpus, 1.0)
    )
    return np.minimum(share, 1.0)


def charge(jobs: Jobs, fleet: Fleet, model: CostModel, start: float, end: float) -> Charges:
    """What each job is charged for its part of [start, end]."""
    inside_start, inside_end = np.maximum(jobs.start, start), np.minimum(jobs.end, end)
    inside_s = np.maximum(inside_end - inside_start, 0.0)
    owned_s_ = np.maximum(inside_end - np.maximum(inside_start, fleet.owned_from[jobs.node]), 0.0)
    hours = owned_s_ / 3600
    whole_s = np.maximum(jobs.end - jobs.start, 1e-9)
    kwh = np.nan_to_num(jobs.energy_j) / J_PER_KWH * np.minimum(inside_s / whole_s, 1.0)
    if model.tariff is None:
        price = np.full(len(kwh), model.price_kwh)
    else:
        price = model.tariff.mean_each(inside_start, np.maximum(inside_end, inside_start))
    share = held_share(jobs, fleet)
    allocated = jobs.gpus * hours
    return Charges(
        gpu_h_allocated=allocated,
        gpu_h_used=allocated * jobs.util_pct / 100,
        kwh=kwh,
        energy=kwh * price,
        hardware=fleet.hardware_per_h[jobs.node] * share * hours,
        fixed=fleet.fixed_per_h[jobs.node] * share * hours,
    )


def unheld(fleet: Fleet, jobs: Jobs, charges: Charges) -> tuple[Cost, float]:
    """The fleet's cost no job carried, and its kWh: each node's cost less its jobs'
    charges (never below 0: a job priced over its run may round past its node's buckets)."""
    n = len(fleet.names)

    def left(whole: np.ndarray, taken: np.ndarray) -> float:
        carried = np.bincount(jobs.node, weights=taken, minlength=n) if len(taken) else 0.0
        return float(np.maximum(whole - carried, 0.0).sum())

    cost = Cost(
        energy=left(fleet.energy_cost, charges.energy),
        hardware=left(fleet.hardware_per_h * fleet.owned_h, charges.hardware),
        fixed=left(fleet.fixed_per_h * fleet.owned_h, charges.fixed),
    )
    return cost, left(fleet.kwh, charges.kwh)


def rows(
    jobs: Jobs,
    charges: Charges,
    keys: Sequence[str],
    fleet: Fleet,
    idle_cost: str = "fleet",
) -> list[Row]:
    """The charges summed by each job's key (its account, user, id or node), most expensive
    first, and what no job held: its own row (`fleet`) or spread over the rows by their
    cost (`shared`)."""
    names, group = np.unique(np.array(keys, dtype=object), return_inverse=True)
    k = len(names)

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(group, weights=values, minlength=k) if k else np.zeros(0)

    measured = ~np.isnan(charges.gpu_h_used)
    energy, hardware, fixed = total(charges.energy), total(charges.hardware), total(charges.fixed)
    found = [
        Row(
            key=str(names[i]),
            jobs=int(count),
            gpu_h_allocated=float(a),
            gpu_h_used=float(u),
            gpu_h_measured=float(m),
            kwh=float(w),
            cost=Cost(energy=float(energy[i]), hardware=float(hardware[i]), fixed=float(fixed[i])),
        )
        for i, (count, a, u, m, w) in enumerate(
            zip(
                np.bincount(group, minlength=k),
                total(charges.gpu_h_allocated),
                total(np.where(measured, charges.gpu_h_used, 0.0)),
                total(np.where(measured, charges.gpu_h_allocated, 0.0)),
                total(charges.kwh),
                strict=True,
            )
        )
    ]
    left, left_kwh = unheld(fleet, jobs, charges)
    direct = sum(r.cost.total for r in found)
    if idle_cost == "shared" and direct > 0:
        found = [_with_idle(r, left.total * r.cost.total / direct) for r in found]
    elif left.total > 0 or left_kwh > 0:
        found.append(Row(IDLE, 0, 0.0, 0.0, 0.0, left_kwh, left))
    return sorted(found, key=lambda r: (-r.cost.total, r.key))


def _with_idle(row: Row, idle: float) -> Row:
    return replace(row, cost=replace(row.cost, idle=idle))


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
    total (total: hours owned in the window). Busy: some job ran on the node."""

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


def busy_h(jobs: Jobs, fleet: Fleet, start: float, end: float) -> np.ndarray:
    """Per node, the hours of [start, end] some job ran: the union of its jobs' runs. The
    runs are sorted by node, then start, each node's shifted past the one before, so one
    running maximum merges every node's overlaps at once."""
    n = len(fleet.names)
    a, z = np.maximum(jobs.start, start), np.minimum(jobs.end, end)
    keep = z > a
    node, a, z = jobs.node[keep], a[keep], z[keep]
    if not len(node):
        return np.zeros(n)
    shift = node * 2.0 * (end - start + 1.0)
    a, z = a - start + shift, z - start + shift
    order = np.lexsort((a, node))
    node, a, z = node[order], a[order], z[order]
    reach = np.maximum.accumulate(z)
    before = np.concatenate(([-np.inf], reach[:-1]))
    fresh = np.maximum(z - np.maximum(a, before), 0.0)
    return np.bincount(node, weights=fresh, minlength=n) / 3600


def utilisation(
    fleet: Fleet, busy: np.ndarray, labels: Mapping[str, Mapping[str, str]]
) -> list[Utilisation]:
    """The fleet's, then one per label `key=value` any node carries."""
    groups: dict[str, list[int]] = {"fleet": list(range(len(fleet.names)))}
    for i, name in enumerate(fleet.names):
        for k, v in sorted(labels.get(name, {}).items()):
            groups.setdefault(f"{k}={v}", []).append(i)
    return [
        Utilisation(
            group=name,
            nodes=len(members),
            busy_h=float(busy[members].sum()),
            awake_h=float(fleet.awake_h[members].sum()),
            total_h=float(fleet.owned_h[members].sum()),
        )
        for name, members in sorted(groups.items(), key=lambda kv: (kv[0] != "fleet", kv[0]))
    ]
