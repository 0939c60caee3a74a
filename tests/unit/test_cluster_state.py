"""The kept cluster state against a rebuild from scratch, after every event of random runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.placement.model import ClusterSnapshot, Power, free_capacity
from coordinator.placement.pick import pick, pick_kept
from coordinator.placement.scheduler import schedule
from coordinator.placement.select import NodeIndex, select
from coordinator.placement.state import PLACEABLE, ClusterState
from tests.unit.placement_support import alloc, job, node

NAMES = [f"n{i}" for i in range(6)]
LABELS = st.sampled_from([{}, {"rack": "r1"}, {"rack": "r2"}])

SICK = st.tuples(st.booleans(), st.sets(st.integers(0, 3)), st.sets(st.integers(0, 3)))


def _node(*, name, power, cpus, gpus, conns, util, labels, resume, sick):
    drained, unusable, degraded = sick
    return node(
        name,
        power=power,
        cpus=cpus,
        mem_gib=32,
        gpus=gpus,
        connections=conns,
        util=util,
        labels=labels,
        resume_s=resume,
        drained=drained and cpus % 5 == 0,  # now and then
        unusable=tuple(i for i in unusable if i < gpus),
        degraded=tuple(i for i in degraded if i < gpus and i not in unusable),
    )


nodes = st.builds(
    _node,
    name=st.sampled_from(NAMES),
    power=st.sampled_from(list(Power)),
    cpus=st.integers(1, 16),
    gpus=st.integers(0, 4),
    conns=st.integers(0, 5),
    util=st.sampled_from([0.0, 10.0, 50.0]),
    labels=LABELS,
    resume=st.sampled_from([10.0, 300.0]),
    sick=SICK,
)
allocations = st.builds(
    lambda i, on, cpus, gpus: alloc(f"a{i}", on, cpus=cpus, mem_gib=1, gpus=tuple(range(gpus))),
    st.integers(0, 9),
    st.sampled_from(NAMES),
    st.integers(0, 8),
    st.integers(0, 2),
)
events = st.one_of(
    st.tuples(st.just("put"), nodes),
    st.tuples(st.just("drop"), st.sampled_from(NAMES)),
    st.tuples(st.just("allocate"), allocations),
    st.tuples(st.just("release"), st.integers(0, 9).map(lambda i: f"a{i}")),
)
queue = [
    job("cpu", cpus=4),
    job("gpu", gpus=1, deadline=500.0, runtime_s=100.0),
    job("two-gpu", gpus=2, labels={"rack": "r1"}),
    job("big", cpus=12, mem_gib=8, deadline=200.0),
    job("small", cpus=1, submitted_at=5.0),
]


class Model:
    """The plain definition: a dict of nodes and a dict of allocations, rebuilt every time."""

    def __init__(self) -> None:
        self.nodes: dict = {}
        self.allocations: dict = {}

    def apply(self, kind: str, what) -> None:
        if kind == "put":
            self.nodes[what.name] = what
        elif kind == "drop":
            self.nodes.pop(what, None)
        elif kind == "allocate":
            self.allocations[what.job_id] = what
        else:
            self.allocations.pop(what, None)

    def snapshot(self) -> ClusterSnapshot:
        return ClusterSnapshot(tuple(self.nodes.values()), tuple(self.allocations.values()))


def apply(state: ClusterState, kind: str, what) -> None:
    events: dict[str, Callable[[Any], None]] = {
        "put": state.put_node,
        "drop": state.drop_node,
        "allocate": state.allocate,
        "release": state.release,
    }
    events[kind](what)


def orders(index: NodeIndex) -> dict:
    """Each shape's bucket in score order (what a pass walks)."""
    return {shape: list(bucket.order) for shape, bucket in index._buckets.items()}


@settings(max_examples=150, deadline=None)
@given(st.lists(events, max_size=30))
def test_kept_state_equals_a_rebuild_after_every_event(run):
    state, model = ClusterState(), Model()
    for power in PLACEABLE:
        state.index(power)  # built at the start, so every later event updates it in place
    for kind, what in run:
        apply(state, kind, what)
        model.apply(kind, what)
        rebuilt = ClusterState.of(model.snapshot())
        assert state.free == free_capacity(model.snapshot())
        for power in PLACEABLE:
            assert orders(state.index(power)) == orders(rebuilt.index(power))
        before = dict(state.free)
        assert schedule(queue, state, 100.0) == schedule(queue, model.snapshot(), 100.0)
        assert state.free == before  # the pass gave back everything it held
        awake = [n for n in model.nodes.values() if n.power is Power.AWAKE]
        for request in (j.request for j in queue):  # the daemon's pick reads the kept state
            assert pick_kept(request, state) == pick(request, model.snapshot())
            chosen = select(request, awake, free_capacity(model.snapshot()))  # the definition
            kept = state.read_index(Power.AWAKE).first(request)
            assert (kept and kept.name) == (chosen and chosen.name)


def test_a_pass_leaves_the_kept_state_as_it_found_it():
    state = ClusterState.of(ClusterSnapshot((node("a", cpus=8), node("b", cpus=8))))
    order = orders(state.index(Power.AWAKE))
    plan = schedule([job("x", cpus=4), job("y", cpus=4, submitted_at=1)], state, 0.0)
    assert [a.node for a in plan.assignments] == ["a", "b"]
    assert orders(state.index(Power.AWAKE)) == order


def test_events_move_only_the_changed_node():
    state = ClusterState.of(ClusterSnapshot((node("a"), node("b", connections=1))))
    assert schedule([job("x")], state, 0.0).assignments[0].node == "a"
    state.allocate(alloc("old", "a", cpus=1))
    state.put_node(node("b"))  # its connection closed
    assert schedule([job("x")], state, 0.0).assignments[0].node == "b"
    state.put_node(replace(state.nodes["b"], power=Power.ASLEEP))
    plan = schedule([job("x")], state, 0.0)
    assert plan.assignments[0].node == "a"
    state.release("old")
    state.drop_node("a")
    plan = schedule([job("x")], state, 0.0)
    assert not plan.assignments
    assert [w.node for w in plan.wakes] == ["b"]


def test_an_allocation_seen_before_its_node_counts_when_the_node_comes():
    state = ClusterState()
    state.allocate(alloc("early", "late-node", cpus=6))
    state.put_node(node("late-node", cpus=8))
    assert state.free["late-node"].cpus == 2


def test_hold_outside_a_pass_is_refused():
    state = ClusterState.of(ClusterSnapshot((node("a"),)))
    with pytest.raises(RuntimeError, match="outside"):
        state.hold(Power.AWAKE, state.nodes["a"], job("x").request)
