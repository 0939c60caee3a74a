"""The kept power book against `policy.decide` over every node, on random fleets and changes."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.core.nodestate import NodeState
from coordinator.power.book import PowerBook
from coordinator.power.policy import (
    SLEEP_WINDOW_S,
    NodePower,
    PowerPolicy,
    WakeWanted,
    decide,
    resume_timeout,
)
from tests.unit.test_power_properties import fleets

NOW = 100_000.0
wanted_lists = st.lists(st.integers(0, 7), max_size=6)
recents = st.lists(st.floats(NOW - 120, NOW), max_size=4)
p95s = st.none() | st.floats(1, 400)


def book_of(nodes: list[NodePower], policy: PowerPolicy) -> PowerBook:
    book = PowerBook(policy)
    for node in nodes:
        book.put(node)
    return book


@settings(max_examples=400, deadline=None)
@given(
    fleets(),
    wanted_lists,
    recents,
    st.lists(p95s, min_size=8, max_size=8),
    st.none() | st.integers(0, 12),
)
def test_the_book_decides_as_the_policy_over_every_node(fleet, wanted_ix, recent, p95, pool):
    """With or without a forecast spare pool (which wakes nodes to reach it)."""
    nodes, policy, now = fleet
    nodes = [replace(n, resume_p95_s=p95[i]) for i, n in enumerate(nodes)]
    wanted = [WakeWanted(f"n{i}", f"job {i}") for i in wanted_ix]
    expected = decide(nodes, wanted, policy, now, recent, pool=pool)
    assert book_of(nodes, policy).decide(wanted, now, recent, pool=pool) == expected


@settings(max_examples=200, deadline=None)
@given(fleets(), fleets(), wanted_lists, recents)
def test_changes_put_into_the_book_decide_as_a_rebuild(first, second, wanted_ix, recent):
    """Nodes change between passes (the second fleet's n0..nk replace the first's)."""
    nodes, policy, now = first
    book = book_of(nodes, policy)
    book.decide([], now, recent)
    changed = {n.name: n for n in second[0]}
    current = [changed.pop(n.name, n) for n in nodes] + list(changed.values())
    for node in second[0]:
        book.put(node)
    wanted = [WakeWanted(f"n{i}", "job") for i in wanted_ix]
    assert book.decide(wanted, now, recent) == decide(current, wanted, policy, now, recent)
    assert book.awake == sum(n.state in {NodeState.ONLINE, NodeState.WAKING} for n in current)


@settings(max_examples=200, deadline=None)
@given(fleets(), recents, st.booleans())
def test_next_due_is_the_earliest_timer_after_now(fleet, recent, wakes_wanted):
    nodes, policy, now = fleet
    due = []
    for n in nodes:
        if n.state is NodeState.ONLINE and not n.jobs and n.idle_since is not None:
            due.append(
                max(n.idle_since + policy.idle_after_s, n.state_since + policy.min_awake_time_s)
            )
        elif n.state is NodeState.WAKING:
            due.append(n.state_since + resume_timeout(n, policy)[0] + 1e-6)
        elif n.state is NodeState.ASLEEP and wakes_wanted:
            due.append(n.state_since + policy.min_asleep_time_s)
    if len(recent) >= policy.max_sleeps_per_min and recent:
        due.append(min(recent) + SLEEP_WINDOW_S)
    expected = min((t for t in due if t > now), default=None)
    assert book_of(nodes, policy).next_due(now, wakes_wanted, recent) == expected


def test_wanted_is_asked_only_of_nodes_due_to_sleep():
    policy = PowerPolicy(sleep_idle=True, idle_after_s=100, min_awake=0, min_awake_time_s=0)
    due = NodePower(name="due", state=NodeState.ONLINE, state_since=0, idle_since=NOW - 200)
    fresh = replace(due, name="fresh", idle_since=NOW - 10)
    asked = []

    def is_wanted(node: NodePower) -> bool:
        asked.append(node.name)
        return False

    actions = book_of([due, fresh], policy).decide([], NOW, (), is_wanted)
    assert [a.node for a in actions] == ["due"]
    assert asked == ["due"]
    assert book_of([due], policy).decide([], NOW, (), lambda n: True) == []
