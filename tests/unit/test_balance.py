"""Balancing strategies (`dormouse pick --strategy`): properties over random fleets and call
sequences, and a few cases by hand."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.placement.balance import Ring, Strategy, by_affinity, load_bound, two_choices
from coordinator.placement.model import ClusterSnapshot, Power, Request
from coordinator.placement.pick import Picked, Picker
from tests.unit.placement_support import node

ANY = Request(cpus=0)
KEYS = [f"user-{i}" for i in range(4000)]


def fleet(count: int, **kw: object) -> ClusterSnapshot:
    return ClusterSnapshot(tuple(node(f"n{i:03d}", **kw) for i in range(count)))  # type: ignore[arg-type]


def owners(names: list[str], keys: list[str]) -> dict[str, str]:
    ring = Ring(names)
    return {k: next(ring.walk(k)) for k in keys}


def picked(result: Picked | str) -> Picked:
    assert isinstance(result, Picked), result
    return result


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 40), st.lists(st.sampled_from(KEYS), min_size=1, max_size=30))
def test_affinity_sends_a_key_to_the_same_node_while_nothing_changes(count, keys):
    picker = Picker(fleet(count))
    for key in keys:
        first = picked(picker.pick(ANY, Strategy.AFFINITY, key))
        again = picked(picker.pick(ANY, Strategy.AFFINITY, key))
        assert (again.node, again.owner) == (first.node, True)


@settings(max_examples=10, deadline=None)
@given(st.integers(5, 40), st.data())
def test_removing_a_node_moves_only_the_keys_it_owned(count, data):
    names = [f"n{i:03d}" for i in range(count)]
    gone = data.draw(st.sampled_from(names))
    before = owners(names, KEYS)
    after = owners([n for n in names if n != gone], KEYS)
    moved = [k for k in KEYS if before[k] != after[k]]
    assert all(before[k] == gone for k in moved)
    assert len(moved) / len(KEYS) <= 1 / count + 0.06


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 12),
    st.lists(st.tuples(st.booleans(), st.sampled_from(KEYS[:50]), st.integers(0, 11)), max_size=80),
    st.sampled_from([1.0, 1.25, 2.0]),
)
def test_affinity_keeps_every_load_within_the_bound(count, ops, factor):
    """Calls arrive (pick + record) and end (release) in any order; the node a call lands on
    never carries more than factor x the mean + 1 after it. (Nodes it did not land on may:
    releases elsewhere lower the mean, and live calls are never moved.)"""
    picker = Picker(fleet(count), balance_factor=factor)
    live: list[str] = []
    names = [f"n{i:03d}" for i in range(count)]
    for arrives, key, which in ops:
        if arrives or not live:
            choice = picked(picker.pick(ANY, Strategy.AFFINITY, key))
            picker.record(choice.node)
            live.append(choice.node)
            loads = [picker.load(n) for n in names]
            assert picker.load(choice.node) <= factor * sum(loads) / count + 1
        else:
            picker.release(live.pop(which % len(live)))


def test_the_owner_spills_to_the_next_on_the_ring_with_the_reason():
    picker = Picker(fleet(4))
    owner = picked(picker.pick(ANY, Strategy.AFFINITY, "user-7")).node
    for _ in range(2):
        picker.record(owner)
    spilled = picked(picker.pick(ANY, Strategy.AFFINITY, "user-7"))
    assert spilled.owner is False
    assert spilled.node != owner
    assert f"owner {owner} has load 2; the bound is 1" == spilled.spilled
    ring_order = list(Ring([f"n{i:03d}" for i in range(4)]).walk("user-7"))
    assert spilled.node == ring_order[1]


def test_bound_is_the_ceiling_of_factor_times_the_mean_after_the_call():
    assert load_bound(total=7, count=4, factor=1.25) == 3  # 1.25 x 8 / 4 = 2.5
    assert load_bound(total=0, count=1, factor=1.25) == 2
    assert by_affinity(Ring([]), "k", lambda _: True, lambda _: 0, 1) is None


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 30), st.integers(0, 3))
def test_round_robin_visits_every_feasible_node_once_per_cycle(count, cycles):
    cluster = fleet(count)
    picker = Picker(cluster)
    seen = [
        picked(picker.pick(ANY, Strategy.ROUND_ROBIN)).node for _ in range(count * (cycles + 1))
    ]
    for cycle in range(cycles + 1):
        turn = seen[cycle * count : (cycle + 1) * count]
        assert sorted(turn) == sorted(n.name for n in cluster.nodes)
    resumed = Picker(cluster, cursor=seen[-1])  # the cursor survives a new snapshot
    assert picked(resumed.pick(ANY, Strategy.ROUND_ROBIN)).node == seen[0]


def test_p2c_takes_the_less_loaded_of_two():
    rng = random.Random(3)
    loads = {"a": 5, "b": 1, "c": 9}
    for _ in range(50):
        choice = two_choices(["a", "b", "c"], lambda _: True, loads.__getitem__, rng)
        assert choice != "c"  # whichever pair is drawn, c loses it
    assert two_choices(["a", "b"], lambda n: n == "a", loads.__getitem__, rng) == "a"
    assert two_choices([], lambda _: True, loads.__getitem__, rng) is None


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(list(Power)), min_size=1, max_size=12),
    st.lists(st.booleans(), min_size=12, max_size=12),
    st.sampled_from(list(Strategy)),
    st.sampled_from(KEYS[:20]),
    st.integers(0, 2),
)
def test_no_strategy_returns_a_node_that_is_not_awake_or_is_being_put_to_sleep(
    powers, avoided, strategy, key, gpus
):
    nodes = tuple(
        node(f"n{i:03d}", power=p, gpus=i % 3, connections=i % 4) for i, p in enumerate(powers)
    )
    avoid = {n.name for n, a in zip(nodes, avoided, strict=False) if a}
    picker = Picker(ClusterSnapshot(nodes), avoid=avoid, rng=random.Random(1))
    request = Request(cpus=1, gpus=gpus)
    result = picker.pick(request, strategy, key)
    usable = [
        n for n in nodes if n.power is Power.AWAKE and n.name not in avoid and len(n.gpus) >= gpus
    ]
    if not usable:
        assert isinstance(result, str)
        return
    chosen = picked(result)
    assert chosen.node in {n.name for n in usable}
    assert chosen.strategy == strategy.value
