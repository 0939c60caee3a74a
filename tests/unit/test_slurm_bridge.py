"""Slurm mode's pure parts: scontrol's node lines, which DOWN nodes are ours to mend and
what to do about them, and what dormouse asks of Slurm with `decides = "dormouse"`."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.core.nodestate import NodeState
from coordinator.slurm import asks
from coordinator.slurm.nodes import SlurmNode, parse_show_node
from coordinator.slurm.recovery import (
    REWAKE_MAX_S,
    Retry,
    backoff,
    recover,
    still_stuck,
    stuck_nodes,
)

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
    assert stuck_nodes([rebooted], set()) == set()


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
