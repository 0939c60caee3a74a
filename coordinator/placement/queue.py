"""Stage 1, queue order: earliest deadline first, then priority, then submit time."""

from __future__ import annotations

from collections.abc import Iterable

from coordinator.placement.model import Job


def queue_key(job: Job) -> tuple[bool, float, int, float, str]:
    """Jobs without a deadline come after every job with one."""
    no_deadline = job.deadline is None
    return (
        no_deadline,
        0.0 if no_deadline else job.deadline,
        -job.priority,
        job.submitted_at,
        job.id,
    )  # type: ignore[return-value]


def queue_order(jobs: Iterable[Job]) -> list[Job]:
    return sorted(jobs, key=queue_key)
