"""Job lifecycle transitions, one per rule."""

from __future__ import annotations

import dataclasses

import pytest

from coordinator.core import jobstate
from coordinator.core.jobstate import JobRecord, JobState
from coordinator.placement.scheduler import Assignment
from shared.messages import Event

PENDING = JobRecord(id="j1", argv=("true",), submitted_at=100.0, runtime_s=60.0, deadline=500.0)
PLACED = dataclasses.replace(PENDING, state=JobState.PLACED, node="n1", placed_at=110.0, attempts=1)
RUNNING = dataclasses.replace(PLACED, state=JobState.RUNNING, started_at=111.0)


def event(kind: str, ts: float = 200.0, node: str = "n1", **kw) -> Event:
    return Event(node=node, ts=ts, kind=kind, job_id="j1", **kw)


def test_place_records_node_gpus_and_attempt():
    change = jobstate.place(PENDING, Assignment("j1", "n2", (0, 1), 170.0, at_risk=False), 110.0)
    assert (change.job.state, change.job.node, change.job.gpu_indices) == (
        JobState.PLACED,
        "n2",
        (0, 1),
    )
    assert (change.job.placed_at, change.job.attempts, change.kind) == (110.0, 1, "placed")
    assert change.detail == "on n2, GPUs 0,1"
    assert jobstate.place(PLACED, Assignment("j1", "n2", (), 1.0, False), 1.0) is None
    cancelled = dataclasses.replace(PENDING, cancel_requested=True)
    assert jobstate.place(cancelled, Assignment("j1", "n2", (), 1.0, False), 1.0) is None


@pytest.mark.parametrize(
    ("before", "report", "state", "started_at"),
    [
        (PLACED, event("job_started", ts=112.0), JobState.RUNNING, 112.0),
        (PLACED, event("job_running", ts=150.0, runtime_s=30.0), JobState.RUNNING, 120.0),
        (RUNNING, event("job_finished", exit_code=0), JobState.SUCCEEDED, 111.0),
        (RUNNING, event("job_finished", exit_code=2), JobState.FAILED, 111.0),
        (PLACED, event("job_finished", exit_code=0, runtime_s=50.0), JobState.SUCCEEDED, 150.0),
        (RUNNING, event("job_lost", detail="gone"), JobState.LOST, 111.0),
    ],
)
def test_agent_reports_move_the_job(before, report, state, started_at):
    change = jobstate.on_event(before, report)
    assert change.job.state is state
    assert change.job.started_at == started_at


def test_finish_records_exit_energy_and_deadline():
    done = jobstate.on_event(
        RUNNING, event("job_finished", ts=400.0, exit_code=0, energy_j=9.5, gpu_util_pct=42.0)
    ).job
    assert (done.finished_at, done.exit_code, done.energy_j, done.deadline_met) == (
        400.0,
        0,
        9.5,
        True,
    )
    assert done.gpu_util_pct == 42.0  # what chargeback weighs its GPU-hours by
    late = jobstate.on_event(RUNNING, event("job_finished", ts=501.0, exit_code=0)).job
    assert late.deadline_met is False
    failed = jobstate.on_event(RUNNING, event("job_finished", ts=300.0, exit_code=1)).job
    assert failed.deadline_met is False  # a failed job did not meet its deadline
    free = dataclasses.replace(RUNNING, deadline=None)
    assert jobstate.on_event(free, event("job_finished", exit_code=0)).job.deadline_met is None


def test_stale_and_foreign_reports_change_nothing():
    assert jobstate.on_event(RUNNING, event("job_started", node="other")) is None
    assert jobstate.on_event(PENDING, event("job_started")) is None
    over = jobstate.on_event(RUNNING, event("job_finished", exit_code=0)).job
    assert jobstate.on_event(over, event("job_finished", exit_code=1)) is None
    assert jobstate.on_event(RUNNING, event("job_running", runtime_s=5.0)) is None


def test_cancel_pending_at_once_on_a_node_by_request():
    now = jobstate.cancel(PENDING, 150.0)
    assert (now.job.state, now.job.finished_at, now.kind) == (
        JobState.CANCELLED,
        150.0,
        "cancelled",
    )
    asked = jobstate.cancel(RUNNING, 150.0)
    assert (asked.job.state, asked.job.cancel_requested) == (JobState.RUNNING, True)
    assert jobstate.cancel(asked.job, 151.0) is None  # asked already
    ended = jobstate.on_event(asked.job, event("job_finished", exit_code=-15, detail="cancelled"))
    assert ended.job.state is JobState.CANCELLED
    unknown = jobstate.on_event(asked.job, event("job_lost", detail="never reached the node"))
    assert unknown.job.state is JobState.CANCELLED


def test_lost_jobs_requeue_only_when_asked():
    assert jobstate.lose(RUNNING, 300.0, "offline").job.state is JobState.LOST
    again = jobstate.lose(dataclasses.replace(RUNNING, requeue=True), 300.0, "offline")
    assert (again.kind, again.job.state, again.job.node, again.job.started_at) == (
        "requeued",
        JobState.PENDING,
        None,
        None,
    )
    assert again.job.attempts == 1  # the next placement counts the second attempt


def test_allocation_ends_at_start_plus_estimate():
    alloc = RUNNING.allocation()
    assert (alloc.node, alloc.ends_at) == ("n1", 171.0)
    assert PLACED.allocation().ends_at == 170.0


def test_a_refused_run_puts_a_placed_job_back_in_the_queue_with_the_agents_reason():
    refused = event("command_refused", detail="no_key: no command key at /etc/dormouse/k")
    again = jobstate.on_event(PLACED, refused)
    assert (again.kind, again.job.state, again.job.node) == ("requeued", JobState.PENDING, None)
    assert again.detail == "n1 refused it: no_key: no command key at /etc/dormouse/k"
    assert jobstate.on_event(RUNNING, refused) is None  # it runs: a copy's refusal changes nothing
    assert jobstate.on_event(PLACED, event("command_refused", node="n2", detail="x")) is None
