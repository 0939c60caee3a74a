"""The daemon's kept cluster follows the registry and the active jobs as a rebuild would."""

from __future__ import annotations

from dataclasses import replace

import pytest

from coordinator.core.jobstate import JobRecord, JobState
from coordinator.core.nodestate import NodeState
from coordinator.core.registry import NodeView, Registry
from coordinator.core.snapshot import KeptCluster, cluster_snapshot, key_state
from coordinator.core.tick import ResumeLatencies
from coordinator.placement.model import Power
from coordinator.placement.state import PLACEABLE
from tests import factories
from tests.factories import TS


def running(job_id: str, node: str, cpus: int) -> JobRecord:
    return JobRecord(
        id=job_id,
        argv=("sleep", "1"),
        submitted_at=TS,
        cpus=cpus,
        state=JobState.RUNNING,
        node=node,
        started_at=TS,
    )


def test_the_kept_cluster_equals_a_rebuild_after_each_change():
    known = NodeView(
        name="old", state=NodeState.ONLINE, state_since=TS, hello=factories.hello("old")
    )
    registry = Registry(offline_after_s=30, nodes=[known])
    latencies = ResumeLatencies()
    kept = KeptCluster(registry, lambda name: latencies.estimate(name, 120.0))

    def check(jobs: list[JobRecord]) -> None:
        state = kept.sync(jobs, latencies.version)
        for power in PLACEABLE:
            state.index(power)  # kept from here on, updated in place
        rebuilt = cluster_snapshot(
            registry.nodes.values(), jobs, lambda name: latencies.estimate(name, 120.0)
        )
        assert sorted(state.snapshot().nodes, key=lambda n: n.name) == sorted(
            rebuilt.nodes, key=lambda n: n.name
        )
        assert set(state.snapshot().allocations) == set(rebuilt.allocations)

    check([])
    assert list(kept.state.nodes) == ["old"]  # known before the kept cluster was made
    registry.on_hello(factories.hello("new"), TS)
    registry.on_status(factories.status("new"), TS)
    check([running("j1", "new", 4)])
    assert kept.state.free["new"].cpus == 28
    registry.on_telemetry(factories.telemetry("new", ts=TS + 1), TS + 2)  # new utilisation
    check([running("j1", "new", 4), running("j2", "old", 8)])
    registry.mark("old", NodeState.ASLEEP, TS + 3)
    check([running("j2", "old", 8)])  # j1 ended
    assert kept.state.nodes["old"].power is Power.ASLEEP
    assert kept.state.free["new"].cpus == 32
    latencies.record("old", 300.0)  # a learned wake time moves every node's estimate
    latencies.record("new", 300.0)
    latencies.record("new", 300.0)
    check([replace(running("j2", "old", 8), cpus=2)])
    assert kept.state.nodes["old"].resume_latency_s == 300.0
    assert kept.state.free["old"].cpus == 30


def test_drains_and_gpu_health_reach_the_kept_cluster():
    registry = Registry(offline_after_s=30)
    registry.on_hello(factories.hello("gpu-01"), TS)
    kept = KeptCluster(registry, lambda name: 0.0)
    assert kept.sync([], 0).nodes["gpu-01"].unusable_gpus == frozenset()
    registry.nodes["gpu-01"].latest = {"gpu_health": {"0": ["degraded", "hardware slowdown"]}}
    registry.set_drains({})  # no drain moved, but the test changed `latest` by hand:
    registry.on_hello(factories.hello("gpu-01"), TS)  # touch it as telemetry would
    node = kept.sync([], 0).nodes["gpu-01"]
    assert (node.degraded_gpus, node.unusable_gpus, node.drained) == ({0}, frozenset(), False)
    registry.set_drains({"gpu-01": {0: "bad fan", -1: "maintenance"}})
    node = kept.sync([], 0).nodes["gpu-01"]
    assert (node.degraded_gpus, node.unusable_gpus, node.drained) == (frozenset(), {0}, True)
    assert kept.state.snapshot() == cluster_snapshot(registry.nodes.values(), [])


@pytest.mark.parametrize(
    ("agent_key", "own_key", "state"),
    [
        ("", "abc", "no key"),
        ("", None, "no key"),  # no key is no key, whoever asks
        ("abc", "abc", "ok"),
        ("abd", "abc", "other key"),
        ("abd", None, "unchecked"),  # a CLI that cannot read the coordinator's key
        (None, "abc", "unknown"),  # an agent from before key ids
    ],
)
def test_key_state_from_the_hello_and_the_coordinators_key(agent_key, own_key, state):
    assert key_state(agent_key, own_key) == state


def test_the_kept_cluster_marks_nodes_whose_agents_cannot_verify_commands():
    def view(name: str, command_key: str | None) -> NodeView:
        hello = replace(factories.hello(name), command_key=command_key)
        return NodeView(name=name, state=NodeState.ONLINE, state_since=TS, hello=hello)

    nodes = [view("ok", "k1"), view("none", ""), view("other", "k2"), view("old", None)]
    kept = KeptCluster(Registry(offline_after_s=30, nodes=nodes), lambda _: 0.0, "k1")
    state = kept.sync([], 0)
    refused = {n.name: n.commands_refused for n in state.nodes.values()}
    assert refused == {"ok": None, "none": "no key", "other": "other key", "old": None}
    assert kept.refusing == {"none": "no key", "other": "other key"}
    rebuilt = cluster_snapshot(nodes, [], own_key="k1")
    assert {n.name: n.commands_refused for n in rebuilt.nodes} == refused
