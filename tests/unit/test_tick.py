"""The per-tick builder that the daemon and the simulator share, and the state table."""

from __future__ import annotations

from collections import deque

import pytest

from coordinator.core import tick
from coordinator.core.nodestate import MEANING, NodeState
from coordinator.core.registry import NodeView
from coordinator.core.snapshot import node_snapshot
from coordinator.placement.model import Power, Request
from coordinator.placement.scheduler import Plan, Wake
from coordinator.power.policy import PowerPolicy
from tests import factories

POLICY = PowerPolicy(cpu_idle_pct=10.0, gpu_idle_pct=5.0)
IDLE = tick.Usage(jobs=0, used_gpus=0, cpu_util_pct=2.0, gpu_util_pct=None)
SHAPE = tick.Shape(cpus=8, mem_bytes=2**34, gpus=(0, 1), labels={"zone": "a"})


def power(state: NodeState, usage: tick.Usage = IDLE, idle_before: float | None = 50.0):
    return tick.node_power(
        "n1",
        state,
        10.0,
        gpus=2,
        usage=usage,
        idle_before=idle_before,
        wanted=False,
        now=100.0,
        policy=POLICY,
    )


def test_every_state_has_one_meaning():
    assert set(MEANING) == set(NodeState)
    assert [s for s in NodeState if MEANING[s].placement is Power.AWAKE] == [NodeState.ONLINE]
    assert {s for s in NodeState if MEANING[s].resuming} == {
        NodeState.ASLEEP,
        NodeState.WAKING,
        NodeState.OFFLINE,
    }


@pytest.mark.parametrize(
    ("state", "placement"),
    [
        (NodeState.ONLINE, Power.AWAKE),
        (NodeState.ASLEEP, Power.ASLEEP),
        (NodeState.WAKING, Power.WAKING),
        (NodeState.SLEEPING, Power.UNAVAILABLE),
        (NodeState.FAILED, Power.UNAVAILABLE),
        (NodeState.OFFLINE, Power.UNAVAILABLE),
    ],
)
def test_placement_sees_each_state_through_the_table(state, placement):
    built = tick.node_snapshot(
        "n1", state, SHAPE, connections=3, util_pct=12.5, resume_latency_s=90.0
    )
    assert built.power is placement
    assert (built.cpus, built.gpus, built.labels) == (8, (0, 1), {"zone": "a"})
    assert (built.connections, built.util_pct, built.resume_latency_s) == (3, 12.5, 90.0)


def test_a_registry_view_and_the_builder_give_the_same_snapshot():
    hello = factories.hello("n1")
    view = NodeView(
        "n1", NodeState.ASLEEP, 5.0, hello=hello, latest={"connections": 4, "cpu_util_pct": 7.0}
    )
    shape = tick.Shape(
        cpus=hello.cpus,
        mem_bytes=hello.mem_total_bytes,
        gpus=tuple(g.index for g in hello.gpus),
        labels=hello.labels,
    )
    expected = tick.node_snapshot(
        "n1", NodeState.ASLEEP, shape, connections=4, util_pct=7.0, resume_latency_s=30.0
    )
    assert node_snapshot(view, 30.0) == expected
    assert node_snapshot(NodeView("n2", NodeState.ONLINE, 0.0)) is None  # no hello yet


def test_the_idle_timer_runs_only_while_online_and_idle():
    assert power(NodeState.ONLINE).idle_since == 50.0  # kept from the last pass
    assert power(NodeState.ONLINE, idle_before=None).idle_since == 100.0  # starts now
    assert power(NodeState.WAKING).idle_since == 100.0  # restarted: it was not online
    busy = tick.Usage(jobs=1, used_gpus=2, cpu_util_pct=2.0, gpu_util_pct=None)
    assert power(NodeState.ONLINE, busy).idle_since is None
    assert (power(NodeState.ONLINE, busy).jobs, power(NodeState.ONLINE, busy).free_gpus) == (1, 0)
    hot = tick.Usage(jobs=0, used_gpus=0, cpu_util_pct=2.0, gpu_util_pct=30.0)
    assert power(NodeState.ONLINE, hot).idle_since is None


def test_a_node_is_wanted_when_a_waiting_job_could_ever_run_there():
    built = tick.node_snapshot(
        "n1", NodeState.ONLINE, SHAPE, connections=0, util_pct=0.0, resume_latency_s=0.0
    )
    assert tick.wanted_by([Request(cpus=4, gpus=2)], built)
    assert not tick.wanted_by([Request(cpus=4, gpus=3)], built)
    assert not tick.wanted_by([Request(cpus=1, labels={"zone": "b"})], built)
    assert not tick.wanted_by([Request(cpus=1)], None)


def test_wake_reasons_name_the_job():
    plan = Plan(wakes=(Wake("n3", "j7", meets_deadline=True),))
    (wanted,) = tick.wake_reasons(plan)
    assert (wanted.node, wanted.reason) == ("n3", "job j7 cannot start on awake nodes")


def test_only_sleeps_inside_the_window_count():
    assert tick.recent_sleeps([10.0, 50.0, 95.0], 100.0) == (50.0, 95.0)
    assert tick.recent_sleeps(deque([10.0, 50.0, 95.0], maxlen=1000), 100.0) == (50.0, 95.0)
    assert tick.recent_sleeps([], 100.0) == ()


def test_the_resume_estimate_is_the_p95_of_the_node_then_its_shape_then_the_fleet():
    latencies = tick.ResumeLatencies()
    assert latencies.estimate("n1", 120.0) == 120.0  # nothing measured: the guess
    for seconds in (10.0, 20.0):
        latencies.record("n1", seconds, shape="8cpu/1gpu")
    assert latencies.estimate("n1", 120.0) == 120.0  # two is not enough to speak for it
    latencies.record("n1", 30.0)  # its shape is remembered
    assert latencies.estimate("n1", 120.0) == 30.0
    for seconds in range(1, 21):  # 1..20 s
        latencies.record("n2", float(seconds), shape="64cpu/8gpu")
    assert latencies.estimate("n2", 120.0) == 19.0  # nearest-rank p95 of 20 values
    assert latencies.quantile("n2", 0.5) == 10.0
    assert latencies.estimate("n3", 120.0, shape="64cpu/8gpu") == 19.0  # its shape's
    assert latencies.estimate("n4", 120.0, shape="1cpu/0gpu") == 20.0  # the fleet's (23)
    assert latencies.own("n4") == ()


def test_an_affinity_call_restarts_the_idle_timer():
    called = tick.Usage(jobs=0, used_gpus=0, cpu_util_pct=2.0, gpu_util_pct=None, last_call_at=80.0)
    assert power(NodeState.ONLINE, called).idle_since == 80.0  # idle since the call, not 50
    early = tick.Usage(jobs=0, used_gpus=0, cpu_util_pct=2.0, gpu_util_pct=None, last_call_at=20.0)
    assert power(NodeState.ONLINE, early).idle_since == 50.0
    busy = tick.Usage(jobs=1, used_gpus=0, cpu_util_pct=2.0, gpu_util_pct=None, last_call_at=80.0)
    assert power(NodeState.ONLINE, busy).idle_since is None
