"""Power policy properties over random fleets and random tick sequences."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.core.nodestate import NodeState
from coordinator.power.policy import NodePower, PowerPolicy, WakeWanted, decide

STATES = list(NodeState)


@st.composite
def fleets(draw: st.DrawFn) -> tuple[list[NodePower], PowerPolicy, float]:
    now = 100_000.0
    count = draw(st.integers(1, 8))
    nodes = []
    for i in range(count):
        gpus = draw(st.integers(0, 4))
        nodes.append(
            NodePower(
                name=f"n{i}",
                state=draw(st.sampled_from(STATES)),
                state_since=now - draw(st.floats(0, 5000)),
                idle_since=draw(st.none() | st.floats(now - 5000, now)),
                jobs=draw(st.integers(0, 2)),
                wanted=draw(st.booleans()),
                gpus=gpus,
                free_gpus=draw(st.integers(0, gpus)),
                can_sleep=draw(st.booleans()),
                can_wake=draw(st.booleans()),
            )
        )
    policy = PowerPolicy(
        sleep_idle=True,
        idle_after_s=draw(st.floats(0, 3000)),
        min_awake=draw(st.integers(0, 4)),
        spare_gpus=draw(st.integers(0, 6)),
        min_awake_time_s=draw(st.floats(0, 3000)),
        min_asleep_time_s=draw(st.floats(0, 3000)),
        max_sleeps_per_min=draw(st.integers(0, 4)),
        resume_timeout_s=draw(st.floats(1, 3000)),
    )
    return nodes, policy, now


def awake(nodes: list[NodePower]) -> list[NodePower]:
    return [n for n in nodes if n.state in {NodeState.ONLINE, NodeState.WAKING}]


@settings(max_examples=300, deadline=None)
@given(fleets(), st.lists(st.integers(0, 7), max_size=6))
def test_never_sleeps_a_node_with_work_or_below_the_floor(
    fleet: tuple[list[NodePower], PowerPolicy, float], wanted_ix: list[int]
) -> None:
    nodes, policy, now = fleet
    wanted = [WakeWanted(f"n{i}", "job") for i in wanted_ix]
    actions = decide(nodes, wanted, policy, now)
    by_name = {n.name: n for n in nodes}
    slept = {a.node for a in actions if a.kind == "sleep"}
    for name in slept:
        node = by_name[name]
        assert node.jobs == 0
        assert not node.wanted
        assert node.state is NodeState.ONLINE
        assert node.idle_since is not None
        assert now - node.idle_since >= policy.idle_after_s
    woken = {a.node for a in actions if a.kind == "wake"}
    failed = {a.node for a in actions if a.kind == "fail"}
    assert not slept & woken
    after = [n for n in awake(nodes) if n.name not in slept and n.name not in failed] + [
        by_name[w] for w in woken
    ]
    if slept:  # sleeping never takes the fleet below the floor
        assert len(after) >= policy.min_awake
        assert policy.spare_gpus == 0 or sum(n.free_gpus for n in after) >= policy.spare_gpus
    assert len(slept) <= policy.max_sleeps_per_min


@settings(max_examples=100, deadline=None)
@given(
    st.integers(2, 5),
    st.floats(10, 500),
    st.floats(10, 500),
    st.lists(st.tuples(st.integers(0, 4), st.booleans()), min_size=20, max_size=60),
)
def test_no_node_toggles_faster_than_the_hysteresis(
    count: int, min_awake_time: float, min_asleep_time: float, ticks: list[tuple[int, bool]]
) -> None:
    """Drive a small fleet tick by tick (wakes come back at once, jobs appear at random)
    and check every sleep and wake against the time the node entered its state."""
    policy = PowerPolicy(
        sleep_idle=True,
        idle_after_s=5,
        min_awake=0,
        min_awake_time_s=min_awake_time,
        min_asleep_time_s=min_asleep_time,
        max_sleeps_per_min=10,
    )
    nodes = {
        f"n{i}": NodePower(name=f"n{i}", state=NodeState.ONLINE, state_since=0.0, idle_since=0.0)
        for i in range(count)
    }
    now, sleeps = 0.0, list[float]()
    for index, want in ticks:
        now += 30.0
        name = f"n{index % count}"
        wanted = [WakeWanted(name, "job")] if want else []
        for action in decide(list(nodes.values()), wanted, policy, now, sleeps):
            node = nodes[action.node]
            if action.kind == "sleep":
                assert now - node.state_since >= min_awake_time
                nodes[node.name] = replace(node, state=NodeState.ASLEEP, state_since=now)
                sleeps.append(now)
            elif action.kind == "wake":
                assert now - node.state_since >= min_asleep_time
                nodes[node.name] = replace(
                    node, state=NodeState.ONLINE, state_since=now, idle_since=now
                )
