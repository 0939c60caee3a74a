"""What the fleet over time reads (`power.timeline`): each node's last state-changing power
event before a window, the events and job runs inside it, and the jobs that waited in it.
Every read is bounded by the window through an index, so a poll for the last minutes costs
the last minutes' rows, however long the history."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import sqlalchemy as sa

from coordinator.core.jobstate import JobState
from coordinator.power.timeline import STATE_KINDS
from coordinator.store.models import Node, jobs, power_events

ACTIVE = (JobState.PLACED.value, JobState.RUNNING.value)
SHOWN_KINDS = (*STATE_KINDS, "sleep", "wake_error", "resumed_late", "request_clear")


@dataclass(frozen=True, slots=True)
class Run:
    job_id: str
    name: str
    node: str
    start: float
    end: float | None  # still running
    state: str


def nodes(conn: sa.Connection) -> list[tuple[str, float | None, str, float]]:
    """(name, first_seen, state, state_since) of every node."""
    query = sa.select(Node.name, Node.first_seen, Node.state, Node.state_since).order_by(Node.name)
    return [(r[0], r[1], r[2], r[3]) for r in conn.execute(query)]


def last_kinds(conn: sa.Connection, before: float) -> dict[str, str]:
    """Each node's last state-changing event kind before `before`: one index probe a node."""
    inner = power_events.alias("inner")
    latest = (
        sa.select(inner.c.kind)
        .where(
            inner.c.node == Node.name,
            inner.c.ts < before,
            inner.c.kind.in_(STATE_KINDS),
        )
        .order_by(inner.c.ts.desc())
        .limit(1)
        .scalar_subquery()
    )
    rows = conn.execute(sa.select(Node.name, latest))
    return {name: kind for name, kind in rows if kind is not None}


def events(
    conn: sa.Connection, start: float, end: float
) -> dict[str, list[tuple[float, str, str]]]:
    """Each node's shown events (ts, kind, reason) in [start, end), oldest first."""
    query = (
        sa.select(
            power_events.c.node, power_events.c.ts, power_events.c.kind, power_events.c.reason
        )
        .where(power_events.c.ts >= start, power_events.c.ts < end)
        .where(power_events.c.kind.in_(SHOWN_KINDS))
        .order_by(power_events.c.ts, power_events.c.id)
    )
    found: dict[str, list[tuple[float, str, str]]] = defaultdict(list)
    for node, ts, kind, reason in conn.execute(query):
        found[node].append((ts, kind, reason))
    return found


def runs(conn: sa.Connection, start: float, end: float) -> list[Run]:
    """Jobs that ran on a node in [start, end): those still placed or running, and those
    that ended after `start` (each through its index)."""
    began = sa.func.coalesce(jobs.c.started_at, jobs.c.placed_at)
    columns = (jobs.c.id, jobs.c.name, jobs.c.node, began, jobs.c.finished_at, jobs.c.state)
    active = sa.select(*columns).where(jobs.c.state.in_(ACTIVE))
    ended = sa.select(*columns).where(jobs.c.finished_at > start)
    found = []
    for query in (active, ended):
        for job_id, name, node, t0, t1, state in conn.execute(query.where(began < end)):
            if node is not None and t0 is not None:
                found.append(Run(job_id, name, node, t0, t1, state))
    return found


def waiting(
    conn: sa.Connection, start: float, end: float
) -> list[tuple[float, float | None, int, int]]:
    """(submitted, left the queue or None, gpus, cpus) of jobs that waited in [start, end):
    those pending now, those placed after `start`, those cancelled from the queue since."""
    left_at = sa.func.coalesce(jobs.c.placed_at, jobs.c.finished_at)
    columns = (jobs.c.submitted_at, left_at, jobs.c.gpus, jobs.c.cpus)
    pending = sa.select(*columns).where(jobs.c.state == JobState.PENDING.value)
    placed = sa.select(*columns).where(jobs.c.placed_at > start)
    dropped = sa.select(*columns).where(jobs.c.finished_at > start, jobs.c.placed_at.is_(None))
    return [
        (t0, t1, gpus, cpus)
        for query in (pending, placed, dropped)
        for t0, t1, gpus, cpus in conn.execute(query.where(jobs.c.submitted_at < end))
    ]
