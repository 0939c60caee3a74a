"""A second `dormouse demo` in the same directory shares the store: its live view and its
summary show only the nodes heard from and the jobs submitted since it started."""

from __future__ import annotations

from coordinator.core.jobstate import JobRecord
from coordinator.core.nodestate import NodeState
from coordinator.core.registry import NodeView
from coordinator.daemon.demo import this_run


def view(name: str, seen: float | None) -> NodeView:
    return NodeView(name=name, state=NodeState.ONLINE, state_since=0.0, last_seen=seen)


def job(job_id: str, submitted: float) -> JobRecord:
    return JobRecord(id=job_id, argv=("true",), submitted_at=submitted)


def test_only_this_runs_nodes_and_jobs():
    views = [view("old-sim-3", 90.0), view("host", 130.0), view("never", None)]
    jobs = [job("old", 95.0), job("new", 100.0), job("newer", 140.0)]
    seen, mine = this_run(views, jobs, started=100.0)
    assert [v.name for v in seen] == ["host"]
    assert [j.id for j in mine] == ["new", "newer"]
