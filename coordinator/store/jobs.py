"""Job rows and the job event log. Callers get `JobRecord`s, never rows.

Every state change is written conditionally on the state it was computed from, so the CLI
(submit, cancel) and the coordinator (placement, agent reports) can both write without
losing each other's changes: a change whose job moved on meanwhile writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from coordinator.core.jobstate import ACTIVE, Change, JobRecord, JobState
from coordinator.store.dialect import upsert
from coordinator.store.models import job_events, job_output, jobs

# written by their own statements (the CLI's cancel, the waste watch), never by a transition
_SET_APART = {"id", "cancel_requested", "wasteful_at"}


def _row(job: JobRecord) -> dict[str, Any]:
    return {
        "id": job.id,
        "name": job.name,
        "argv": list(job.argv),
        "cpus": job.cpus,
        "mem_bytes": job.mem_bytes,
        "gpus": job.gpus,
        "labels": job.labels,
        "runtime_s": job.runtime_s,
        "deadline": job.deadline,
        "priority": job.priority,
        "requeue": job.requeue,
        "state": job.state.value,
        "node": job.node,
        "gpu_indices": list(job.gpu_indices),
        "submitted_at": job.submitted_at,
        "placed_at": job.placed_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "exit_code": job.exit_code,
        "energy_j": job.energy_j,
        "deadline_met": job.deadline_met,
        "detail": job.detail[:1024],
        "attempts": job.attempts,
        "cancel_requested": job.cancel_requested,
        "account": job.account,
        "user_name": job.user,
        "gpu_util_pct": job.gpu_util_pct,
        "wasteful_at": job.wasteful_at,
    }


def _record(row: sa.RowMapping) -> JobRecord:
    values = dict(row)
    values["user"] = values.pop("user_name")
    values["argv"] = tuple(values["argv"])
    values["gpu_indices"] = tuple(values["gpu_indices"])
    values["state"] = JobState(values["state"])
    values["requeue"] = bool(values["requeue"])
    values["cancel_requested"] = bool(values["cancel_requested"])
    if values["deadline_met"] is not None:
        values["deadline_met"] = bool(values["deadline_met"])
    return JobRecord(**values)


def insert(conn: sa.Connection, job: JobRecord, now: float) -> None:
    conn.execute(sa.insert(jobs), [_row(job)])
    log_event(conn, job.id, ts=now, kind="submitted", node=None, detail=" ".join(job.argv))


def submitted_since(conn: sa.Connection, since: float) -> list[tuple[float, int]]:
    """(submitted_at, GPUs asked) of the jobs submitted after `since`, oldest first: what
    the spare-pool forecast learns from."""
    query = (
        sa.select(jobs.c.submitted_at, jobs.c.gpus)
        .where(jobs.c.submitted_at > since)
        .order_by(jobs.c.submitted_at)
    )
    return [(float(ts), int(gpus)) for ts, gpus in conn.execute(query)]


def get(conn: sa.Connection, job_id: str) -> JobRecord | None:
    row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).mappings().first()
    return None if row is None else _record(row)


def active(conn: sa.Connection) -> list[JobRecord]:
    """Pending, placed and running jobs: what placement and reconciliation work on."""
    query = sa.select(jobs).where(jobs.c.state.in_([s.value for s in ACTIVE]))
    return [_record(r) for r in conn.execute(query).mappings()]


def listing(
    conn: sa.Connection,
    states: Iterable[str] = (),
    limit: int = 1000,
    *,
    account: str | None = None,
    wasteful: bool = False,
) -> list[JobRecord]:
    """Newest first; `wasteful`: only jobs the waste watch flagged."""
    query = sa.select(jobs).order_by(jobs.c.submitted_at.desc(), jobs.c.id).limit(limit)
    wanted = list(states)
    if wanted:
        query = query.where(jobs.c.state.in_(wanted))
    if account is not None:
        query = query.where(jobs.c.account == account)
    if wasteful:
        query = query.where(jobs.c.wasteful_at.is_not(None))
    return [_record(r) for r in conn.execute(query).mappings()]


def flag_wasteful(conn: sa.Connection, job_id: str, now: float, detail: str) -> bool:
    """Mark a running job wasteful once (False: flagged already, or no longer running)."""
    result = conn.execute(
        sa.update(jobs)
        .where(
            jobs.c.id == job_id,
            jobs.c.state == JobState.RUNNING.value,
            jobs.c.wasteful_at.is_(None),
        )
        .values(wasteful_at=now)
    )
    if result.rowcount != 1:
        return False
    log_event(conn, job_id, ts=now, kind="wasteful", node=None, detail=detail)
    return True


def apply(conn: sa.Connection, before: JobRecord, change: Change, now: float) -> bool:
    """Write `change` if the job is still as `before` left it; log it. False: it moved on."""
    after = _row(change.job)
    values = {k: v for k, v in after.items() if k not in _SET_APART}
    if change.job.cancel_requested != before.cancel_requested:
        values["cancel_requested"] = change.job.cancel_requested
    result = conn.execute(
        sa.update(jobs)
        .where(jobs.c.id == before.id, jobs.c.state == before.state.value)
        .values(values)
    )
    if result.rowcount != 1:
        return False
    node = change.job.node or before.node
    log_event(conn, before.id, ts=now, kind=change.kind, node=node, detail=change.detail)
    return True


def log_event(
    conn: sa.Connection, job_id: str, *, ts: float, kind: str, node: str | None, detail: str
) -> None:
    conn.execute(
        sa.insert(job_events),
        [{"job_id": job_id, "ts": ts, "kind": kind, "node": node, "detail": detail[:1024]}],
    )


def events(conn: sa.Connection, job_id: str) -> list[dict[str, Any]]:
    query = (
        sa.select(job_events.c.ts, job_events.c.kind, job_events.c.node, job_events.c.detail)
        .where(job_events.c.job_id == job_id)
        .order_by(job_events.c.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def save_output(conn: sa.Connection, job_id: str, stdout: str, stderr: str, at: float) -> None:
    """The end of a job's output as its end event carried it (a redelivered event writes
    the same again)."""
    row = {"job_id": job_id, "stdout_tail": stdout, "stderr_tail": stderr, "ended_at": at}
    statement = upsert(conn, job_output).on_conflict_do_update(
        index_elements=["job_id"],
        set_={k: v for k, v in row.items() if k != "job_id"},
    )
    conn.execute(statement, [row])


def output(conn: sa.Connection, job_id: str) -> tuple[str, str] | None:
    """(stdout, stderr) tails kept for the job; None when its end brought none."""
    query = sa.select(job_output.c.stdout_tail, job_output.c.stderr_tail)
    row = conn.execute(query.where(job_output.c.job_id == job_id)).first()
    return None if row is None else (row[0], row[1])


RELEASE = "release_requested"  # `dormouse jobs release`: the job event the dispatcher reads
HELD = "held"  # its detail: the hold's note (`dormouse jobs`), NOTE_END, then why
NOTE_END = ": "


def log_hold(conn: sa.Connection, job_id: str, now: float, note: str, why: str) -> None:
    """A job held for a better window: its note (read back by `hold_notes`) and why."""
    log_event(conn, job_id, ts=now, kind=HELD, node=None, detail=f"{note}{NOTE_END}{why}")


def released(conn: sa.Connection, job_ids: Iterable[str]) -> set[str]:
    """Those of `job_ids` an operator asked to start now."""
    wanted = list(job_ids)
    if not wanted:
        return set()
    query = sa.select(job_events.c.job_id).where(
        job_events.c.kind == RELEASE, job_events.c.job_id.in_(wanted)
    )
    return set(conn.execute(query).scalars())


def hold_notes(conn: sa.Connection, job_ids: Iterable[str]) -> dict[str, str]:
    """For each of `job_ids` still held, its hold as `dormouse jobs` shows it (the newest
    `held` event's note), unless released since."""
    wanted = list(job_ids)
    if not wanted:
        return {}
    query = (
        sa.select(job_events.c.job_id, job_events.c.kind, job_events.c.detail)
        .where(job_events.c.kind.in_([HELD, RELEASE]), job_events.c.job_id.in_(wanted))
        .order_by(job_events.c.ts, job_events.c.id)
    )
    notes: dict[str, str] = {}
    for job_id, kind, detail in conn.execute(query):
        if kind == RELEASE:
            notes.pop(job_id, None)
        else:
            notes[job_id] = detail.partition(NOTE_END)[0]
    return notes


def deadline_outcomes(conn: sa.Connection, start: float, end: float) -> list[tuple[float, bool]]:
    """(GPU-hours, met) of each job with a deadline that ended in [start, end]."""
    query = sa.select(
        jobs.c.gpus, jobs.c.started_at, jobs.c.finished_at, jobs.c.deadline_met
    ).where(
        jobs.c.deadline.is_not(None),
        jobs.c.deadline_met.is_not(None),
        jobs.c.finished_at >= start,
        jobs.c.finished_at <= end,
    )
    return [
        (gpus * max(0.0, finished - (started if started is not None else finished)) / 3600, met)
        for gpus, started, finished, met in conn.execute(query)
    ]
