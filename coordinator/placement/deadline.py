"""Stage 3, deadline check: when would a job finish on a node, and is that in time?"""

from __future__ import annotations

from coordinator.placement.model import Job, NodeSnapshot, Power

RESUMING = frozenset({Power.ASLEEP, Power.WAKING})


def finish_estimate(job: Job, node: NodeSnapshot, now: float) -> float:
    """now + resume latency (asleep nodes) + the job's runtime estimate."""
    resume = node.resume_latency_s if node.power in RESUMING else 0.0
    return now + resume + job.runtime_s


def meets_deadline(job: Job, node: NodeSnapshot, now: float) -> bool:
    return job.deadline is None or finish_estimate(job, node, now) <= job.deadline
