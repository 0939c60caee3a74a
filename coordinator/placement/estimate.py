"""What `dormouse submit` answers: when a new job should start and finish, and whether its
deadline is at risk.

If this pass would place it, it starts now; if it would wake a node for it, after that node's
resume latency. Otherwise it starts when enough allocations on some node are expected to end
(their start + runtime estimate). Jobs queued ahead that are not placed yet are not modelled
there, so a queued estimate is optimistic; `basis` says which case applied.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from coordinator.placement.deadline import RESUMING
from coordinator.placement.filters import never_fits, rejection
from coordinator.placement.model import (
    Allocation,
    ClusterSnapshot,
    Free,
    Job,
    NodeSnapshot,
    Power,
    free_capacity,
)
from coordinator.placement.scheduler import schedule


@dataclass(frozen=True, slots=True)
class Estimate:
    start: float | None  # None: no node can take it at any time we can foresee
    finish: float | None
    node: str | None
    at_risk: bool
    basis: str  # "now", "wake", "queued", "unknown"


def estimate(job: Job, pending: list[Job], cluster: ClusterSnapshot, now: float) -> Estimate:
    plan = schedule([*pending, job], cluster, now)
    for placed in plan.assignments:
        if placed.job_id == job.id:
            return _at(job, now, placed.node, "now")
    nodes = {n.name: n for n in cluster.nodes}
    for wake in plan.wakes:
        if wake.job_id == job.id:
            return _at(job, now + nodes[wake.node].resume_latency_s, wake.node, "wake")
    best: tuple[float, str] | None = None
    free = free_capacity(cluster)
    on_node: dict[str, list[Allocation]] = defaultdict(list)
    for alloc in cluster.allocations:
        on_node[alloc.node].append(alloc)
    for node in cluster.nodes:
        start = _release_time(job, node, on_node[node.name], free[node.name])
        if start is not None and (best is None or (max(start, now), node.name) < best):
            best = (max(start, now), node.name)
    if best is None:
        return Estimate(None, None, None, job.deadline is not None, "unknown")
    return _at(job, best[0], best[1], "queued")


def _at(job: Job, start: float, node: str | None, basis: str) -> Estimate:
    finish = start + job.runtime_s
    at_risk = job.deadline is not None and finish > job.deadline
    return Estimate(start, finish, node, at_risk, basis)


def _release_time(
    job: Job, node: NodeSnapshot, allocations: list[Allocation], free: Free
) -> float | None:
    """When enough of the node's allocations end for the job to fit there."""
    if node.power is Power.UNAVAILABLE or never_fits(job.request, node):
        return None
    ending = sorted(
        (a for a in allocations if a.ends_at is not None),
        key=lambda a: a.ends_at,  # type: ignore[arg-type, return-value]
    )
    resume = node.resume_latency_s if node.power in RESUMING else 0.0
    for alloc in ending:
        free = Free(
            free.cpus + alloc.cpus,
            free.mem_bytes + alloc.mem_bytes,
            free.gpus | set(alloc.gpus),
            free.jobs - 1,
        )
        if rejection(job.request, node, free) is None:
            return alloc.ends_at + resume  # type: ignore[operator]
    return None
