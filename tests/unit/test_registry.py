from __future__ import annotations

import dataclasses
from dataclasses import replace

from coordinator.core.nodestate import NodeState
from coordinator.core.registry import Registry
from tests import factories


def test_telemetry_brings_a_node_online_and_silence_takes_it_offline():
    registry = Registry(offline_after_s=30)
    registry.on_hello(factories.hello("gpu-01"), 0)
    registry.on_telemetry(factories.telemetry("gpu-01", seq_first=0, count=2), 1)
    node = registry.nodes["gpu-01"]
    assert (node.state, node.last_seen) == ("online", 1)
    assert node.latest["cpu_util_pct"] == 11.0
    assert node.latest["gpus"] == 1
    assert node.latest["gpu_util_pct"] == 99.0
    assert registry.expire(20) == []
    assert registry.expire(32) == ["gpu-01"]
    assert node.state == "offline"


def test_last_will_and_sleeping_status():
    registry = Registry(offline_after_s=30)
    registry.on_status(factories.status("n1", "online"), 0)
    registry.on_status(factories.status("n1", "offline"), 5)
    assert registry.nodes["n1"].state == "offline"
    registry.on_status(factories.status("n1", "sleeping"), 6)
    assert registry.expire(1000) == []  # a sleeping node is not "offline" for silence


def test_a_resent_old_batch_does_not_replace_the_latest():
    registry = Registry(offline_after_s=30)
    registry.on_telemetry(factories.telemetry("n1", seq_first=100, count=1), 1)
    registry.on_telemetry(factories.telemetry("n1", seq_first=5, count=1), 2)
    assert registry.nodes["n1"].latest["seq"] == 100


def test_changed_nodes_are_handed_out_once():
    registry = Registry(offline_after_s=30)
    registry.on_status(factories.status("n1"), 0)
    assert [v.name for v in registry.take_changed()] == ["n1"]
    assert registry.take_changed() == []


def test_a_sleeping_node_that_drops_off_is_asleep_not_offline():
    registry = Registry(offline_after_s=30)
    registry.on_status(factories.status("n1", "online"), 0)
    registry.mark("n1", NodeState.SLEEPING, 1)
    registry.on_status(factories.status("n1", "offline"), 2)  # its Last Will, or its own word
    assert registry.nodes["n1"].state == "asleep"
    registry.on_status(factories.status("n1", "offline"), 3)
    assert registry.nodes["n1"].state == "asleep"


def test_a_sleeping_node_gone_silent_is_asleep():
    registry = Registry(offline_after_s=30)
    registry.on_telemetry(factories.telemetry("n1"), 0)
    registry.mark("n1", NodeState.SLEEPING, 1)
    assert registry.expire(20) == []
    assert registry.nodes["n1"].state == "sleeping"
    assert registry.expire(40) == []  # not reported offline
    assert registry.nodes["n1"].state == "asleep"


def test_waking_node_comes_back_online_by_status_or_fresh_telemetry():
    registry = Registry(offline_after_s=30)
    registry.mark("n1", NodeState.WAKING, 5)
    registry.on_status(factories.status("n1", "offline"), 6)  # the retained Last Will
    assert registry.nodes["n1"].state == "waking"
    registry.on_status(factories.status("n1", "online"), 7)
    assert registry.nodes["n1"].state == "online"
    registry.mark("n1", NodeState.ASLEEP, 8)
    registry.on_telemetry(factories.telemetry("n1"), 9)  # samples newer than the sleep
    assert registry.nodes["n1"].state == "online"


def test_samples_from_before_the_sleep_do_not_wake_it():
    registry = Registry(offline_after_s=30)
    late = factories.TS + 100  # the node fell asleep after these samples were taken
    registry.mark("n1", NodeState.ASLEEP, late)
    registry.on_telemetry(factories.telemetry("n1"), late + 1)
    assert registry.nodes["n1"].state == "asleep"


def test_a_failed_node_stays_failed_until_cleared():
    registry = Registry(offline_after_s=30)
    registry.mark("n1", NodeState.FAILED, 5)
    registry.on_status(factories.status("n1", "online"), 6)
    registry.on_telemetry(factories.telemetry("n1"), 7)
    assert registry.nodes["n1"].state == "failed"


def test_a_node_still_sampling_long_after_a_sleep_was_sent_is_online():
    registry = Registry(offline_after_s=30)
    registry.mark("n1", NodeState.SLEEPING, factories.TS - 10)
    registry.on_telemetry(factories.telemetry("n1"), factories.TS)  # the command may be slow
    assert registry.nodes["n1"].state == "sleeping"
    registry = Registry(offline_after_s=30)
    registry.mark("n1", NodeState.SLEEPING, factories.TS - 40)
    registry.on_telemetry(factories.telemetry("n1"), factories.TS)  # it was lost, or refused
    assert registry.nodes["n1"].state == "online"


def _with_gpu(batch, seq_first, health="ok", reason=""):
    """The batch with its GPU judged `health` by the agent."""
    samples = tuple(
        replace(s, gpus=tuple(replace(g, health=health, reason=reason) for g in s.gpus))
        for s in batch.samples
    )
    return replace(batch, seq_first=seq_first, samples=samples)


def test_gpu_health_changes_are_noted_once_each_and_an_old_batch_changes_nothing():
    registry = Registry(offline_after_s=30)
    registry.on_hello(factories.hello("gpu-01"), 0)
    base = factories.telemetry("gpu-01", seq_first=0, count=2)
    registry.on_telemetry(_with_gpu(base, 0), 1)
    assert registry.health_changes == []
    registry.on_telemetry(_with_gpu(base, 2, "degraded", "thermal clocks-down"), 2)
    registry.on_telemetry(_with_gpu(base, 4, "degraded", "thermal clocks-down"), 3)
    registry.on_telemetry(_with_gpu(base, 6, "failed", "XID 79: fell off the bus"), 4)
    registry.on_telemetry(_with_gpu(base, 0), 5)  # a resent old batch: not the latest
    registry.on_telemetry(_with_gpu(base, 8), 6)  # repaired
    changes = [(c.gpu_index, c.kind, c.reason) for c in registry.health_changes]
    assert changes == [
        (0, "degraded", "thermal clocks-down"),
        (0, "failed", "XID 79: fell off the bus"),
        (0, "ok", ""),
    ]
    assert registry.health_counts == {"degraded": 1, "failed": 1, "ok": 1}
    assert registry.nodes["gpu-01"].latest["gpu_health"] == {}


def test_drains_touch_only_the_nodes_whose_drains_moved():
    registry = Registry(offline_after_s=30)
    for name in ("a", "b"):
        registry.on_hello(factories.hello(name), 0)
    seen = registry.watch()
    registry.set_drains({"a": {-1: "maintenance"}})
    assert (seen, registry.nodes["a"].drains) == ({"a"}, {-1: "maintenance"})
    seen.clear()
    registry.set_drains({"a": {-1: "maintenance"}})
    assert seen == set()
    registry.set_drains({})
    assert (seen, registry.nodes["a"].drains) == ({"a"}, {})


def test_a_takeover_drops_the_health_changes_the_last_leader_stored():
    registry = Registry(offline_after_s=30)
    registry.on_hello(factories.hello("gpu-01"), 0)
    base = factories.telemetry("gpu-01", seq_first=0, count=2)
    registry.on_telemetry(_with_gpu(base, 0, "failed", "XID 79: fell off the bus"), 1)
    assert len(registry.health_changes) == 1  # a standby noted it; the leader stored it
    stored = [dataclasses.replace(registry.nodes["gpu-01"], state=NodeState.ASLEEP)]
    registry.adopt(stored)
    assert registry.health_changes == []
    assert registry.nodes["gpu-01"].state == NodeState.ASLEEP


def test_forget_drops_a_quiet_node_and_keeps_one_heard_from_since():
    """`dormouse nodes forget` asked at t=10: the forged node (a hello at 0, nothing since)
    leaves memory, unsaved, and the kept states hear of it; the live one (a sample at 12)
    stays."""
    registry = Registry(offline_after_s=30)
    watched = registry.watch()
    registry.on_hello(factories.hello("forged"), 0)
    registry.on_hello(factories.hello("live"), 0)
    registry.on_telemetry(factories.telemetry("live", seq_first=0, count=1), 12)
    watched.clear()
    assert registry.forget("forged", asked_at=10.0)
    assert not registry.forget("live", asked_at=10.0)
    assert not registry.forget("never-heard-of", asked_at=10.0)
    assert set(registry.nodes) == {"live"}
    assert watched == {"forged"}  # placement and power drop it at their next pass
    assert [v.name for v in registry.take_changed()] == ["live"]  # nothing of it saved
