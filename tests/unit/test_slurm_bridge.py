"""Slurm mode's pure parts: scontrol's node lines, which DOWN nodes are ours to mend and
what to do about them, and what dormouse asks of Slurm with `decides = "dormouse"`."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.core.nodestate import NodeState
from coordinator.core.registry import NodeView, Registry
from coordinator.daemon.slurm_bridge import SlurmBridge
from coordinator.power.policy import Action
from coordinator.settings import Slurm
from coordinator.slurm import asks
from coordinator.slurm.nodes import SlurmNode, parse_show_node
from coordinator.slurm.recovery import (
    REWAKE_MAX_S,
    WOKEN_LATELY_S,
    Retry,
    backoff,
    recover,
    still_stuck,
    stuck_nodes,
    woken_lately,
)

T0 = 1_800_000_000.0
SHOW_NODE = Path(__file__).parents[1] / "fixtures" / "slurm" / "show-node-22.05.txt"


@pytest.fixture
def nodes() -> dict[str, SlurmNode]:
    return {n.name: n for n in parse_show_node(SHOW_NODE.read_text())}


def test_scontrol_lines_parse_with_their_flags_and_reasons(nodes):
    assert nodes["gpu01"] == SlurmNode("gpu01", frozenset({"IDLE"}), "")
    assert nodes["gpu02"].states == {"DOWN", "POWERED_DOWN", "NOT_RESPONDING"}
    assert nodes["gpu02"].reason == "ResumeTimeout reached"  # Slurm's [user@time] dropped
    assert nodes["gpu05"].reason == "disk replaced, do not use"
    assert parse_show_node("\nNo nodes in the system\n") == []


def test_only_slurms_power_reasons_make_a_down_node_ours(nodes):
    assert nodes["gpu02"].stuck  # missed ResumeTimeout
    assert not nodes["gpu05"].stuck  # a person's DOWN is theirs
    assert not nodes["gpu04"].stuck  # powered down, not DOWN
    assert SlurmNode("x", frozenset({"DOWN"}), "").stuck  # a late registration cleared it
    assert SlurmNode("x", frozenset({"DOWN"}), "dormouse: wake try 2 failed").stuck
    rebooted = SlurmNode("gpu02", frozenset({"DOWN"}), "Node unexpectedly rebooted")
    assert not rebooted.stuck
    assert stuck_nodes([rebooted, nodes["gpu05"]], {"gpu02", "gpu05"}) == {"gpu02"}
    assert stuck_nodes([rebooted], set()) == set()  # not seen stuck, not woken by us


def test_only_nodes_back_from_a_wake_within_the_hour_are_woken_lately():
    back = {"d-a": 1000.0, "d-b": 1000.0 - WOKEN_LATELY_S}
    names = ["a", "b", "c"]
    assert woken_lately(names, back, 1000.0 + 10, lambda s: f"d-{s}") == {"a"}


def test_idle_and_powered_down_as_slurm_would_accept_a_power_change(nodes):
    assert nodes["gpu01"].idle
    assert not nodes["gpu03"].idle  # allocated, powering up
    assert not nodes["gpu04"].idle
    assert nodes["gpu04"].powered_down
    assert not nodes["gpu02"].powered_down  # DOWN: recovery's, not a wake's
    drained = SlurmNode("x", frozenset({"IDLE", "DRAIN"}))
    assert not drained.idle


def mend(nodes, states, retries=None, now=1000.0):
    listed = list(nodes.values())
    return recover(
        listed,
        stuck_nodes(listed, set()),
        states,
        retries or {},
        now,
        rewake_after_s=60.0,
        dormouse_name=lambda s: f"d-{s}",
    )


def test_a_stuck_node_whose_agent_is_back_is_resumed(nodes):
    steps = mend(nodes, {"d-gpu02": NodeState.ONLINE, "d-gpu05": NodeState.ONLINE})
    assert [(s.kind, s.slurm, s.node) for s in steps] == [("resume", "gpu02", "d-gpu02")]
    assert "ResumeTimeout reached" in steps[0].why


def test_a_stuck_node_still_away_is_woken_again_with_backoff(nodes):
    [first] = mend(nodes, {"d-gpu02": NodeState.FAILED})
    assert (first.kind, first.attempt) == ("wake", 0)
    assert mend(nodes, {"d-gpu02": NodeState.WAKING}) == []  # a wake in flight
    tried = {"d-gpu02": Retry(tries=2, last_at=1000.0)}
    assert mend(nodes, {"d-gpu02": NodeState.ASLEEP}, tried, now=1000.0 + 119) == []
    [again] = mend(nodes, {"d-gpu02": NodeState.ASLEEP}, tried, now=1000.0 + 120)
    assert (again.kind, again.attempt) == ("wake", 2)  # the third method round the list
    assert "wake try 3" in again.why
    assert mend(nodes, {}) == []  # dormouse does not know it: left alone


def test_backoff_doubles_to_its_ceiling():
    assert [backoff(t, 60.0) for t in (0, 1, 2, 3)] == [60.0, 60.0, 120.0, 240.0]
    assert backoff(20, 60.0) == REWAKE_MAX_S


def test_retries_are_kept_while_stuck_and_for_a_while_after():
    retries = {"a": Retry(1, 0.0), "b": Retry(1, 0.0), "c": Retry(1, 5000.0)}
    assert still_stuck(retries, {"a"}, now=REWAKE_MAX_S + 1) == {
        "a": Retry(1, 0.0),
        "c": Retry(1, 5000.0),
    }


def test_dormouse_asks_slurm_only_what_it_would_accept(nodes):
    assert asks.slurm_state_for("sleep", nodes["gpu01"]) == "POWER_DOWN"
    assert asks.slurm_state_for("sleep", nodes["gpu03"]) is None  # busy
    assert asks.slurm_state_for("wake", nodes["gpu04"]) == "POWER_UP"
    assert asks.slurm_state_for("wake", nodes["gpu03"]) is None  # already powering up
    assert asks.slurm_state_for("wake", nodes["gpu02"]) is None  # DOWN: recovery's
    assert asks.slurm_state_for("sleep", None) is None  # not a Slurm node
    assert asks.due({}, "a", 0.0)
    assert not asks.due({"a": 100.0}, "a", 100.0 + asks.ASK_AGAIN_S - 1)
    assert asks.due({"a": 100.0}, "a", 100.0 + asks.ASK_AGAIN_S)


class FakeScontrol:
    def __init__(self, nodes: list[SlurmNode]) -> None:
        self.shown = nodes
        self.updates: list[tuple[str, str, str | None]] = []

    async def nodes(self) -> list[SlurmNode]:
        return self.shown

    async def update(self, node: str, state: str, reason: str | None = None) -> None:
        self.updates.append((node, state, reason))


class FakePower:
    def __init__(self, resumed_at: dict[str, float] | None = None) -> None:
        self.resumed_at = resumed_at or {}
        self.notes: list[tuple[str, str, str]] = []
        self.wakes: list[tuple[str, int]] = []

    def note(self, now: float, node: str, kind: str, reason: str) -> None:
        self.notes.append((node, kind, reason))

    async def wake(self, node: str, reason: str, now: float, attempt: int = 0):
        self.wakes.append((node, attempt))
        return True, "Wake-on-LAN to 02:00:00:00:00:01"


def bridge(shown: list[SlurmNode], states: dict[str, NodeState], **config):
    views = [NodeView(n, s, T0, last_seen=T0) for n, s in states.items()]
    scontrol = FakeScontrol(shown)
    settings = Slurm(enabled=True, watch_every=30.0, rewake_after=60.0, **config)
    return SlurmBridge(settings, Registry(30.0, views), scontrol), scontrol


async def test_a_late_host_dormouse_woke_is_mended_though_slurm_calls_it_rebooted():
    """Registered just after ResumeTimeout: Slurm's first reason was never read."""
    late = SlurmNode("gpu01", frozenset({"DOWN"}), "Node unexpectedly rebooted")
    mend, scontrol = bridge([late], {"gpu01": NodeState.ONLINE})
    power = FakePower({"gpu01": T0 - 60})
    await mend.tick(T0, power)
    assert scontrol.updates == [("gpu01", "RESUME", None)]
    assert power.notes[0][:2] == ("gpu01", "slurm_resume")
    crashed, scontrol = bridge([late], {"gpu01": NodeState.ONLINE})
    await crashed.tick(T0, FakePower())  # not woken by dormouse: a crash is a person's
    assert scontrol.updates == []


async def test_a_stuck_node_still_away_is_woken_and_slurm_told_why():
    stuck = SlurmNode("gpu01", frozenset({"DOWN", "POWERED_DOWN"}), "ResumeTimeout reached")
    mend, scontrol = bridge([stuck], {"gpu01": NodeState.FAILED})
    power = FakePower()
    await mend.tick(T0, power)
    assert power.wakes == [("gpu01", 0)]
    [(node, state, reason)] = scontrol.updates
    assert (node, state) == ("gpu01", "DOWN")
    assert reason.startswith("dormouse: wake try 1 sent (Wake-on-LAN")
    await mend.tick(T0 + 31, power)  # read again, but the backoff (60 s) is not over
    assert len(power.wakes) == 1
    await mend.tick(T0 + 61, power)
    assert power.wakes[-1] == ("gpu01", 1)  # the next method


async def test_dormouse_decides_asks_slurm_and_slurm_decides_leaves_it():
    idle = SlurmNode("gpu01", frozenset({"IDLE"}))
    ours, scontrol = bridge([idle], {"gpu01": NodeState.ONLINE}, decides="dormouse")
    power = FakePower()
    await ours.tick(T0, power)
    sleep = Action("sleep", "gpu01", "idle for 15 min")
    await ours.carry(sleep, T0, power)
    await ours.carry(sleep, T0 + 1, power)  # asked already: not again so soon
    assert scontrol.updates == [("gpu01", "POWER_DOWN", None)]
    assert power.notes == [("gpu01", "slurm_ask", "idle for 15 min: asked Slurm for POWER_DOWN")]
    theirs, scontrol = bridge([idle], {"gpu01": NodeState.ONLINE}, decides="slurm")
    await theirs.tick(T0, power)
    await theirs.carry(sleep, T0, power)
    assert scontrol.updates == []
