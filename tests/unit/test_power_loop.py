"""The daemon's power loop against a real SQLite store: a wake that outlasts its timeout."""

from __future__ import annotations

import dataclasses

from coordinator.core.jobstate import JobRecord
from coordinator.core.nodestate import NodeState
from coordinator.core.registry import NodeView, Registry
from coordinator.core.tick import ResumeLatencies
from coordinator.daemon.dispatch import JobsPass
from coordinator.daemon.power_loop import PowerLoop
from coordinator.services import nodes as node_service
from coordinator.settings import Power
from coordinator.store import jobs as job_rows
from coordinator.store import nodes as node_rows
from coordinator.store import power as power_rows
from shared.messages import CommandBody, GpuInfo
from tests import factories

T0 = factories.TS
WEEK_S = 7 * 86400.0


class Quiet:
    unable = None

    async def send(self, node: str, body: CommandBody) -> bool:
        return True


async def test_a_failed_node_that_turns_up_late_teaches_its_wake_time(empty_store):
    hello = dataclasses.replace(factories.hello("slow"), wake_methods=("command",))
    asleep = NodeView("slow", NodeState.ASLEEP, T0, last_seen=T0, hello=hello)
    registry = Registry(30.0, [asleep])
    with empty_store.begin() as conn:
        node_rows.save_nodes(conn, [asleep])
    latencies = ResumeLatencies()
    config = Power(resume_timeout=300.0, first_wake_timeout=0.0, wake_command="true {node}")
    loop = PowerLoop(empty_store, registry, config, Quiet(), latencies)
    assert await loop._wake("slow", "a job", T0)
    await loop.tick(T0 + 301, JobsPass())  # not back within the fixed 300 s
    assert registry.nodes["slow"].state is NodeState.FAILED
    registry.nodes["slow"].last_seen = T0 + 500  # its first sample, 500 s after the wake
    await loop.tick(T0 + 501, JobsPass())
    assert latencies.own("slow") == (500.0,)
    assert registry.nodes["slow"].state is NodeState.FAILED  # still, until cleared
    kinds = [e.kind for e in power_rows_events(empty_store)]
    assert kinds[-2:] == ["failed", "resumed_late"]
    assert node_service.wake_times(empty_store, "slow").count == 1


def power_rows_events(engine):
    with engine.connect() as conn:
        return power_rows.events(conn, node="slow")


async def test_a_forecast_spare_pool_keeps_awake_the_gpus_last_weeks_jobs_asked_for(empty_store):
    """Last week at this hour 8 GPUs were asked for; a node takes an hour to wake: with
    `spare = "forecast"` both 4-GPU idle nodes stay up, with the fixed default one sleeps."""
    gpus = tuple(
        GpuInfo(index=i, uuid=f"GPU-{i}", name="H100", mem_total_bytes=2**36) for i in range(4)
    )
    with empty_store.begin() as conn:
        for i in range(2):
            job = JobRecord(id=f"old{i}", argv=("true",), submitted_at=T0 - WEEK_S + 60, gpus=4)
            job_rows.insert(conn, job, T0 - WEEK_S + 60)
    base = Power(
        sleep_idle=True, idle_after=60.0, min_awake=1, resume_latency=3600.0, spare_max_gpus=16
    )
    slept = {}
    for spare in ("fixed", "forecast"):
        views = [
            NodeView(
                name,
                NodeState.ONLINE,
                T0 - 86400,
                last_seen=T0,
                hello=dataclasses.replace(factories.hello(name), gpus=gpus),
                latest={"cpu_util_pct": 0.0},
            )
            for name in ("a", "b")
        ]
        registry = Registry(3600.0, views)
        config = dataclasses.replace(base, spare=spare)
        loop = PowerLoop(empty_store, registry, config, Quiet(), ResumeLatencies())
        await loop.tick(T0, JobsPass())  # the idle timers start
        await loop.tick(T0 + 61, JobsPass())
        slept[spare] = [v.name for v in views if v.state is NodeState.SLEEPING]
    assert slept == {"fixed": ["a"], "forecast": []}
