"""Jobs, pure: the record, and every transition of `pending → placed → running →
succeeded | failed | cancelled | lost` (DESIGN.md, "States").

The coordinator applies these to rows it loaded and writes back what they return; nothing
here reads a clock or the store. A transition that does not apply (an event for a job that
has already ended, or from a node the job is no longer on) returns None and changes nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum

from coordinator.placement.model import Allocation, Job, Request
from coordinator.placement.scheduler import Assignment
from shared.messages import Event


class JobState(StrEnum):
    PENDING = "pending"
    PLACED = "placed"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"


ACTIVE = frozenset({JobState.PENDING, JobState.PLACED, JobState.RUNNING})
ON_NODE = frozenset({JobState.PLACED, JobState.RUNNING})


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRecord:
    id: str
    argv: tuple[str, ...]
    submitted_at: float
    name: str = ""
    cpus: int = 0
    mem_bytes: int = 0
    gpus: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    runtime_s: float = 3600.0  # the user's estimate
    deadline: float | None = None
    priority: int = 0
    requeue: bool = False
    state: JobState = JobState.PENDING
    node: str | None = None
    gpu_indices: tuple[int, ...] = ()
    placed_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    energy_j: float | None = None
    deadline_met: bool | None = None
    detail: str = ""
    attempts: int = 0
    cancel_requested: bool = False
    account: str = ""  # who pays: a team or project
    user: str = ""  # who submitted it
    gpu_util_pct: float | None = None  # its GPUs' mean utilisation over its run (its agent)
    wasteful_at: float | None = None  # when its GPUs were found idle past `waste_after`

    def as_job(self) -> Job:
        """What placement reads."""
        request = Request(
            cpus=self.cpus, mem_bytes=self.mem_bytes, gpus=self.gpus, labels=self.labels
        )
        return Job(
            id=self.id,
            request=request,
            runtime_s=self.runtime_s,
            submitted_at=self.submitted_at,
            deadline=self.deadline,
            priority=self.priority,
        )

    def allocation(self) -> Allocation:
        """The resources it holds on its node while placed or running."""
        began = self.started_at or self.placed_at
        return Allocation(
            job_id=self.id,
            node=self.node or "",
            cpus=self.cpus,
            mem_bytes=self.mem_bytes,
            gpus=self.gpu_indices,
            ends_at=None if began is None else began + self.runtime_s,
        )


@dataclass(frozen=True, slots=True)
class Change:
    """A transition's result: the new record and the line for the job's event log."""

    job: JobRecord
    kind: str
    detail: str = ""


def place(job: JobRecord, assignment: Assignment, now: float) -> Change | None:
    if job.state is not JobState.PENDING or job.cancel_requested:
        return None
    placed = dataclasses.replace(
        job,
        state=JobState.PLACED,
        node=assignment.node,
        gpu_indices=assignment.gpus,
        placed_at=now,
        attempts=job.attempts + 1,
    )
    gpus = ",".join(map(str, assignment.gpus)) or "none"
    risk = " (deadline at risk)" if assignment.at_risk else ""
    return Change(placed, "placed", f"on {assignment.node}, GPUs {gpus}{risk}")


def cancel(job: JobRecord, now: float) -> Change | None:
    """Pending: cancelled at once. On a node: asked for; the agent's report ends it."""
    if job.state is JobState.PENDING:
        return Change(
            _end(job, JobState.CANCELLED, now, detail="cancelled before it ran"), "cancelled"
        )
    if job.state in ON_NODE and not job.cancel_requested:
        return Change(dataclasses.replace(job, cancel_requested=True), "cancel_requested")
    return None


def on_event(job: JobRecord, event: Event) -> Change | None:
    """An agent's report about this job."""
    if job.state not in ON_NODE or event.node != job.node:
        return None  # over already, or a stale report from a node it has left
    handler = _HANDLERS.get(event.kind)
    return None if handler is None else handler(job, event)


def _started(job: JobRecord, event: Event) -> Change:
    return _running(job, event.ts, "started")


def _still_running(job: JobRecord, event: Event) -> Change | None:
    """The agent's reconciliation report: confirms a placed job is running."""
    if job.state is JobState.RUNNING:
        return None
    return _running(job, event.ts - (event.runtime_s or 0.0), "running")


def _lost(job: JobRecord, event: Event) -> Change:
    if job.cancel_requested:
        return Change(_end(job, JobState.CANCELLED, event.ts, detail=event.detail), "cancelled")
    return lose(job, event.ts, event.detail or f"{event.node} no longer has it")


def _refused(job: JobRecord, event: Event) -> Change | None:
    """The agent cannot verify the job's `run` (no command key, another key): back in the
    queue with its reason; its hello says so too, and placement now passes the node by."""
    if job.state is not JobState.PLACED:
        return None  # running already: a refusal of some later copy changes nothing
    return unplace(job, f"{event.node} refused it: {event.detail}")


def unplace(job: JobRecord, reason: str) -> Change:
    """A placed job whose node will not take it (it failed to resume): back in the queue."""
    again = dataclasses.replace(
        job, state=JobState.PENDING, node=None, gpu_indices=(), placed_at=None
    )
    return Change(again, "requeued", reason)


def lose(job: JobRecord, now: float, reason: str) -> Change:
    """The job's node lost it (or stayed offline too long): lost, or back in the queue."""
    if job.requeue:
        again = dataclasses.replace(
            job, state=JobState.PENDING, node=None, gpu_indices=(), placed_at=None, started_at=None
        )
        return Change(again, "requeued", reason)
    return Change(_end(job, JobState.LOST, now, detail=reason), "lost", reason)


def _running(job: JobRecord, started_at: float, kind: str) -> Change:
    return Change(dataclasses.replace(job, state=JobState.RUNNING, started_at=started_at), kind)


def _finished(job: JobRecord, event: Event) -> Change:
    if job.cancel_requested:
        state = JobState.CANCELLED
    elif event.exit_code == 0:
        state = JobState.SUCCEEDED
    else:
        state = JobState.FAILED
    started = job.started_at
    if started is None and event.runtime_s is not None:
        started = event.ts - event.runtime_s
    ended = _end(
        dataclasses.replace(job, started_at=started),
        state,
        event.ts,
        detail=event.detail,
        exit_code=event.exit_code,
        energy_j=event.energy_j,
        gpu_util_pct=event.gpu_util_pct,
    )
    return Change(ended, state.value, f"exit {event.exit_code} {event.detail}".strip())


def _end(
    job: JobRecord,
    state: JobState,
    now: float,
    *,
    detail: str,
    exit_code: int | None = None,
    energy_j: float | None = None,
    gpu_util_pct: float | None = None,
) -> JobRecord:
    met = None if job.deadline is None else now <= job.deadline
    return dataclasses.replace(
        job,
        state=state,
        finished_at=now,
        exit_code=exit_code,
        energy_j=energy_j,
        gpu_util_pct=gpu_util_pct,
        detail=detail,
        deadline_met=met if state is JobState.SUCCEEDED else (False if met is not None else None),
    )


_HANDLERS = {
    "job_started": _started,
    "job_running": _still_running,
    "job_finished": _finished,
    "job_lost": _lost,
    "command_refused": _refused,
}
