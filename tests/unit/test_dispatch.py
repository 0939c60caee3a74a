"""The dispatcher against a real SQLite store, with a sender that records what would go out."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine

from coordinator.core.jobstate import JobRecord, JobState
from coordinator.core.nodestate import NodeState
from coordinator.core.registry import NodeView, Registry
from coordinator.core.tick import ResumeLatencies
from coordinator.daemon.dispatch import Dispatcher
from coordinator.power.defer import DeferPolicy, Holds
from coordinator.power.tariff import Rate
from coordinator.services import jobs as jobs_service
from coordinator.settings import Jobs
from shared.messages import CancelJob, CommandBody, RunJob
from tests import factories

T0 = factories.TS


class Recorder:
    def __init__(self, unable: str | None = None) -> None:
        self.sent: list[tuple[float, str, CommandBody]] = []
        self.now = T0
        self.unable = unable

    async def send(self, node: str, body: CommandBody) -> bool:
        self.sent.append((self.now, node, body))
        return True

    def ops(self) -> list[tuple[float, str]]:
        return [(at, body.OP) for at, _, body in self.sent]


def one_node(
    store: Engine,
    sender: Recorder,
    node: NodeView,
    *,
    default_resume_s: float = 0.0,
    holds: Holds | None = None,
) -> Dispatcher:
    return Dispatcher(
        store,
        Registry(30.0, [node]),
        Jobs(),
        sender,
        latencies=ResumeLatencies(),
        default_resume_s=default_resume_s,
        holds=holds,
    )


async def test_a_cancel_goes_out_at_the_next_pass_not_after_the_run_retry(empty_store):
    job = JobRecord(id=jobs_service.new_job_id(), argv=("sleep", "60"), submitted_at=T0)
    jobs_service.submit(empty_store, job, T0)
    online = NodeView("gpu-01", NodeState.ONLINE, T0, last_seen=T0, hello=factories.hello())
    sender = Recorder()
    dispatcher = Dispatcher(
        empty_store,
        Registry(30.0, [online]),
        Jobs(dispatch_retry=30.0),
        sender,
        latencies=ResumeLatencies(),
        default_resume_s=0.0,
    )
    await dispatcher.tick(T0)
    assert sender.ops() == [(T0, RunJob.OP)]
    assert jobs_service.cancel(empty_store, job.id, T0 + 1).state is JobState.PLACED
    for at in (T0 + 2, T0 + 3, T0 + 32):
        sender.now = at
        await dispatcher.tick(at)
    assert sender.ops() == [
        (T0, RunJob.OP),
        (T0 + 2, CancelJob.OP),  # at once, though `run` went out 2 s before
        (T0 + 32, CancelJob.OP),  # again after dispatch_retry without an answer
    ]


async def test_without_a_command_key_jobs_stay_pending(empty_store):
    job = JobRecord(id=jobs_service.new_job_id(), argv=("true",), submitted_at=T0)
    jobs_service.submit(empty_store, job, T0)
    online = NodeView("gpu-01", NodeState.ONLINE, T0, last_seen=T0, hello=factories.hello())
    sender = Recorder(unable="no command key at /nope/command.key")
    dispatcher = one_node(empty_store, sender, online)
    done = await dispatcher.tick(T0)
    assert done.plan.assignments == ()
    assert dispatcher.held == "no command key at /nope/command.key"
    record, _ = jobs_service.describe(empty_store, job.id)
    assert record.state is JobState.PENDING
    assert sender.sent == []


async def test_a_job_with_slack_is_held_for_the_cheaper_hour_then_placed(empty_store):
    """Twice the price until T0 + 1 h: an hour's job due in 10 h waits for it (a job event
    says until when and why), and is sent to the node in the first pass after."""
    rate = Rate((T0 - 3600, T0 + 3600), (0.2, 0.1))
    holds = Holds(rate, DeferPolicy(keep_slack=0.0, fill=1.0))
    job = JobRecord(
        id=jobs_service.new_job_id(),
        argv=("train",),
        submitted_at=T0,
        runtime_s=3600,
        deadline=T0 + 36_000,
        gpus=1,
    )
    jobs_service.submit(empty_store, job, T0)
    online = NodeView("gpu-01", NodeState.ONLINE, T0, last_seen=T0, hello=factories.hello())
    sender = Recorder()
    dispatcher = one_node(empty_store, sender, online, default_resume_s=60.0, holds=holds)
    first = await dispatcher.tick(T0)
    assert sender.sent == []
    assert first.plan.assignments == ()
    assert first.held[job.id].until == T0 + 3600
    await dispatcher.tick(T0 + 1800)
    assert sender.sent == []
    _, events = jobs_service.describe(empty_store, job.id)
    held = [str(e["detail"]) for e in events if e["kind"] == "held"]
    assert len(held) == 1  # said once, not at every pass
    assert "50% lower" in held[0]
    assert "60s for a wake" in held[0]
    sender.now = T0 + 3600
    await dispatcher.tick(T0 + 3600)
    assert sender.ops() == [(T0 + 3600, RunJob.OP)]


async def test_a_held_job_released_by_an_operator_starts_at_the_next_pass(empty_store):
    """`dormouse jobs` shows the hold (`held until ... (cheaper by 50 %)`); `dormouse jobs
    release ID` starts it at the next pass, long before the cheaper hour; a job no longer
    pending cannot be released."""
    rate = Rate((T0 - 3600, T0 + 3600), (0.2, 0.1))
    holds = Holds(rate, DeferPolicy(keep_slack=0.0, fill=1.0))
    job = JobRecord(
        id=jobs_service.new_job_id(), argv=("train",), submitted_at=T0, runtime_s=3600,
        deadline=T0 + 36_000, gpus=1,
    )  # fmt: skip
    jobs_service.submit(empty_store, job, T0)
    online = NodeView("gpu-01", NodeState.ONLINE, T0, last_seen=T0, hello=factories.hello())
    sender = Recorder()
    dispatcher = one_node(empty_store, sender, online, default_resume_s=60.0, holds=holds)
    await dispatcher.tick(T0)
    listed = jobs_service.listing(empty_store, [], 10)
    hhmm = time.strftime("%H:%M", time.gmtime(T0 + 3600))
    expected = f"held until {hhmm} UTC (cheaper by 50 %)"
    assert jobs_service.held_notes(empty_store, listed) == {job.id: expected}
    await dispatcher.tick(T0 + 10)
    assert sender.sent == []
    jobs_service.release(empty_store, job.id, T0 + 20)
    assert jobs_service.held_notes(empty_store, listed) == {}
    sender.now = T0 + 30
    await dispatcher.tick(T0 + 30)
    assert sender.ops() == [(T0 + 30, RunJob.OP)]
    with pytest.raises(jobs_service.NotHeld, match="is placed"):
        jobs_service.release(empty_store, job.id, T0 + 40)
