"""Hypothesis properties of a scheduling pass over random fleets and queues."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.placement.filters import rejection
from coordinator.placement.model import ClusterSnapshot, Power, free_capacity
from coordinator.placement.queue import queue_order
from coordinator.placement.scheduler import schedule
from coordinator.placement.select import select
from tests.unit.placement_support import alloc, job, node

LABELS = st.sampled_from([{}, {"rack": "r1"}, {"rack": "r2"}])


@st.composite
def fleets(draw):
    count = draw(st.integers(1, 8))
    nodes = []
    for i in range(count):
        nodes.append(
            node(
                f"n{i}",
                power=draw(st.sampled_from(list(Power))),
                cpus=draw(st.integers(1, 16)),
                mem_gib=draw(st.integers(1, 64)),
                gpus=draw(st.integers(0, 4)),
                connections=draw(st.integers(0, 5)),
                util=draw(st.sampled_from([0.0, 10.0, 50.0])),
                labels=draw(LABELS),
            )
        )
        gpus = len(nodes[-1].gpus)
        unusable = draw(st.sets(st.integers(0, 3))) if gpus else set()
        degraded = draw(st.sets(st.integers(0, 3))) if gpus else set()
        nodes[-1] = replace(
            nodes[-1],
            drained=draw(st.integers(0, 9)) == 0,
            unusable_gpus=frozenset(i for i in unusable if i < gpus),
            degraded_gpus=frozenset(i for i in degraded if i < gpus and i not in unusable),
        )
    allocations = []
    for i, n in enumerate(nodes):  # something already running on some nodes, within capacity
        if draw(st.booleans()):
            gpus = tuple(range(draw(st.integers(0, len(n.gpus)))))
            allocations.append(
                alloc(f"old{i}", n.name, cpus=draw(st.integers(0, n.cpus)), mem_gib=0, gpus=gpus)
            )
    return ClusterSnapshot(tuple(nodes), tuple(allocations))


@st.composite
def queues(draw):
    count = draw(st.integers(0, 25))
    return [
        job(
            f"j{i}",
            cpus=draw(st.integers(0, 8)),
            mem_gib=draw(st.integers(0, 16)),
            gpus=draw(st.integers(0, 3)),
            runtime_s=draw(st.sampled_from([10.0, 100.0, 1000.0])),
            submitted_at=draw(st.integers(0, 50)),
            deadline=draw(st.none() | st.integers(0, 2000).map(float)),
            priority=draw(st.integers(-2, 2)),
            labels=draw(LABELS),
        )
        for i in range(count)
    ]


def used(cluster, plan, jobs):
    by_id = {j.id: j for j in jobs}
    totals = defaultdict(lambda: [0, 0, []])
    for a in cluster.allocations:
        totals[a.node][0] += a.cpus
        totals[a.node][1] += a.mem_bytes
        totals[a.node][2] += list(a.gpus)
    for a in plan.assignments:
        request = by_id[a.job_id].request
        totals[a.node][0] += request.cpus
        totals[a.node][1] += request.mem_bytes
        totals[a.node][2] += list(a.gpus)
    return totals


@settings(max_examples=120, deadline=None)
@given(fleets(), queues())
def test_no_node_is_over_committed_and_no_gpu_is_handed_out_twice(cluster, jobs):
    plan = schedule(jobs, cluster, 0.0)
    nodes = {n.name: n for n in cluster.nodes}
    for name, (cpus, mem, gpus) in used(cluster, plan, jobs).items():
        assert cpus <= nodes[name].cpus
        assert mem <= nodes[name].mem_bytes
        assert len(gpus) == len(set(gpus))
        assert set(gpus) <= set(nodes[name].gpus)
    for a in plan.assignments:
        assert len(a.gpus) == next(j for j in jobs if j.id == a.job_id).request.gpus


@settings(max_examples=120, deadline=None)
@given(fleets(), queues())
def test_jobs_go_only_to_awake_nodes_and_each_job_is_decided_once(cluster, jobs):
    plan = schedule(jobs, cluster, 0.0)
    power = {n.name: n.power for n in cluster.nodes}
    assert all(power[a.node] is Power.AWAKE for a in plan.assignments)
    assert all(power[w.node] is Power.ASLEEP for w in plan.wakes)
    decided = [a.job_id for a in plan.assignments] + [w.job_id for w in plan.waiting]
    assert sorted(decided) == sorted(j.id for j in jobs)


@settings(max_examples=120, deadline=None)
@given(fleets(), queues())
def test_edf_a_waiting_job_did_not_fit_after_the_jobs_ahead_of_it(cluster, jobs):
    """Capacity short: nothing later in queue order took room an earlier job could use."""
    plan = schedule(jobs, cluster, 0.0)
    placed = {a.job_id: a for a in plan.assignments}
    order = sorted(
        jobs, key=lambda j: (j.deadline is None, j.deadline or 0, -j.priority, j.submitted_at, j.id)
    )
    awake = [n for n in cluster.nodes if n.power is Power.AWAKE]
    for position, waiting in enumerate(order):
        if waiting.id in placed:
            continue
        ahead = [placed[j.id] for j in order[:position] if j.id in placed]
        free = free_capacity(cluster)
        for a in ahead:
            request = next(j for j in jobs if j.id == a.job_id).request
            free[a.node] = free[a.node].minus(request.cpus, request.mem_bytes, a.gpus)
        assert all(rejection(waiting.request, n, free[n.name]) for n in awake)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 20), min_size=1, max_size=10), st.integers(0, 2))
def test_among_equal_nodes_the_fewest_connections_wins(connections, gpus):
    nodes = tuple(node(f"n{i}", gpus=2, connections=c) for i, c in enumerate(connections))
    plan = schedule([job("j", gpus=gpus)], ClusterSnapshot(nodes), 0.0)
    chosen = next(n for n in nodes if n.name == plan.assignments[0].node)
    assert chosen.connections == min(connections)


@settings(max_examples=120, deadline=None)
@given(fleets(), queues())
def test_the_fast_pass_chooses_what_filter_score_select_defines(cluster, jobs):
    """Each assignment is `select` over the free map as it stood when that job came up."""
    plan = schedule(jobs, cluster, 0.0)
    placed = {a.job_id: a for a in plan.assignments}
    free = free_capacity(cluster)
    awake = [n for n in cluster.nodes if n.power is Power.AWAKE]
    for j in queue_order(jobs):
        expected = select(j.request, awake, free)
        if j.id in placed:
            a = placed[j.id]
            assert expected is not None
            assert expected.name == a.node
            free[a.node] = free[a.node].minus(j.request.cpus, j.request.mem_bytes, a.gpus)
        elif not any(w.job_id == j.id for w in plan.wakes):
            assert expected is None


def test_the_failed_request_memo_still_places_smaller_requests():
    cluster = ClusterSnapshot((node("a", cpus=2),))
    plan = schedule(
        [job("big", cpus=4, deadline=1), job("small", cpus=1, deadline=2)], cluster, 0.0
    )
    assert [a.job_id for a in plan.assignments] == ["small"]
