"""Placement, stage by stage (table-driven), then the composed pass, pick and estimate."""

from __future__ import annotations

from dataclasses import replace

import pytest

from coordinator.placement.deadline import finish_estimate, meets_deadline
from coordinator.placement.estimate import estimate
from coordinator.placement.filters import (
    enough_cpus,
    enough_gpus,
    enough_memory,
    labels_match,
    never_fits,
    node_available,
    rejection,
    verifies_commands,
)
from coordinator.placement.model import ClusterSnapshot, Free, Power, Request, free_capacity
from coordinator.placement.pick import Picked, pick
from coordinator.placement.queue import queue_order
from coordinator.placement.scheduler import schedule
from coordinator.placement.score import least_connections, score
from coordinator.placement.select import assign_gpus, select
from tests.unit.placement_support import GIB, alloc, job, node

FREE = Free(cpus=4, mem_bytes=8 * GIB, gpus=frozenset({0, 1}), jobs=0)


@pytest.mark.parametrize(
    ("jobs", "expected"),
    [
        ([job("a", deadline=200), job("b", deadline=100)], ["b", "a"]),
        ([job("a"), job("b", deadline=500)], ["b", "a"]),  # a deadline beats none
        ([job("a", priority=1), job("b", priority=5)], ["b", "a"]),
        ([job("a", deadline=100, priority=0), job("b", deadline=100, priority=9)], ["b", "a"]),
        ([job("a", submitted_at=5), job("b", submitted_at=1)], ["b", "a"]),
        ([job("a", deadline=50, priority=-3), job("b", priority=100)], ["a", "b"]),
    ],
)
def test_queue_order(jobs, expected):
    assert [j.id for j in queue_order(jobs)] == expected


@pytest.mark.parametrize(
    ("check", "request_", "target", "refused"),
    [
        (node_available, Request(), node("n"), None),
        (node_available, Request(), node("n", power=Power.ASLEEP), None),
        (node_available, Request(), node("n", power=Power.UNAVAILABLE), "unavailable"),
        (enough_cpus, Request(cpus=4), node("n"), None),
        (enough_cpus, Request(cpus=5), node("n"), "cpus"),
        (enough_memory, Request(mem_bytes=8 * GIB), node("n"), None),
        (enough_memory, Request(mem_bytes=8 * GIB + 1), node("n"), "memory"),
        (enough_gpus, Request(gpus=2), node("n"), None),
        (enough_gpus, Request(gpus=3), node("n"), "gpus"),
        (
            labels_match,
            Request(labels={"rack": "r1"}),
            node("n", labels={"rack": "r1", "x": "y"}),
            None,
        ),
        (labels_match, Request(labels={"rack": "r1"}), node("n", labels={"rack": "r2"}), "labels"),
        (labels_match, Request(labels={"rack": "r1"}), node("n"), "labels"),
    ],
)
def test_filters(check, request_, target, refused):
    assert check(request_, target, FREE) == refused


def test_rejection_names_the_first_refusing_filter_and_never_fits_ignores_state():
    asleep_small = node("n", power=Power.UNAVAILABLE, cpus=2)
    assert rejection(Request(cpus=1), asleep_small, FREE) == "unavailable"
    assert never_fits(Request(cpus=1), asleep_small) is None
    assert never_fits(Request(cpus=3), asleep_small) == "cpus"


@pytest.mark.parametrize(
    ("power", "deadline", "finish", "meets"),
    [
        (Power.AWAKE, None, 1060.0, True),
        (Power.AWAKE, 1060.0, 1060.0, True),
        (Power.AWAKE, 1059.0, 1060.0, False),
        (Power.ASLEEP, 1080.0, 1090.0, False),  # 30 s to resume
        (Power.ASLEEP, 1090.0, 1090.0, True),
    ],
)
def test_deadline_check(power, deadline, finish, meets):
    j, n = job("j", runtime_s=60, deadline=deadline), node("n", power=power, resume_s=30)
    assert finish_estimate(j, n, 1000.0) == finish
    assert meets_deadline(j, n, 1000.0) is meets


@pytest.mark.parametrize(
    ("nodes", "jobs_on", "winner"),
    [
        ([node("a", connections=3), node("b", connections=1)], {}, "b"),
        ([node("a", connections=0), node("b", connections=0)], {"a": 2}, "b"),  # jobs count too
        ([node("a", connections=1, util=50), node("b", connections=1, util=10)], {}, "b"),
        ([node("b", util=10), node("a", util=10)], {}, "a"),  # then the name
        ([node("a", connections=1, util=0), node("b", connections=0, util=99)], {}, "b"),
    ],
)
def test_score_least_connections_then_utilisation_then_name(nodes, jobs_on, winner):
    free = {n.name: Free(8, 32 * GIB, frozenset(), jobs_on.get(n.name, 0)) for n in nodes}
    assert select(Request(), nodes, free).name == winner


def test_least_connections_counts_jobs_and_service_connections():
    assert least_connections(node("a", connections=4), Free(1, 1, frozenset(), jobs=2)) == 6
    assert score(node("a", util=3.5), FREE) == (0, 0, 3.5, "a")


def test_select_skips_infeasible_nodes_and_answers_none():
    nodes = [node("a", cpus=1), node("b", cpus=8, connections=10)]
    free = free_capacity(ClusterSnapshot(tuple(nodes)))
    assert select(Request(cpus=2), nodes, free).name == "b"
    assert select(Request(cpus=9), nodes, free) is None


def test_assign_gpus_lowest_free_indices():
    n = node("n", gpus=4)
    assert assign_gpus(n, Free(1, 1, frozenset({3, 1, 2})), 2) == (1, 2)
    assert assign_gpus(n, Free(1, 1, frozenset({3})), 0) == ()
    with pytest.raises(ValueError, match="2 GPUs asked, 1 free"):
        assign_gpus(n, Free(1, 1, frozenset({3})), 2)


def test_assign_gpus_never_hands_out_a_sick_gpu_and_degraded_ones_last():
    n = node("n", gpus=4, unusable=(0,), degraded=(1,))
    every = Free(1, 1, frozenset({0, 1, 2, 3}))
    assert assign_gpus(n, every, 2) == (2, 3)
    assert assign_gpus(n, every, 3) == (2, 3, 1)
    with pytest.raises(ValueError, match="4 GPUs asked, 3 free and usable"):
        assign_gpus(n, every, 4)


@pytest.mark.parametrize(
    ("request_", "target", "refused"),
    [
        (Request(gpus=1), node("n", gpus=2), None),
        (Request(), node("n", drained=True), "drained"),
        (Request(gpus=2), node("n", gpus=2, unusable=(1,)), "gpu health"),
        (Request(gpus=1), node("n", gpus=2, unusable=(1,)), None),
        (Request(gpus=3), node("n", gpus=2, unusable=(1,)), "gpus"),  # short anyway
        (Request(gpus=2), node("n", gpus=2, degraded=(0, 1)), None),  # degraded still fits
        (Request(cpus=1), node("n", gpus=2, unusable=(0, 1)), None),  # CPU work is welcome
    ],
)
def test_drain_and_gpu_health_filters(request_, target, refused):
    assert rejection(request_, target, free_capacity(ClusterSnapshot((target,)))[target.name]) == (
        refused
    )


def test_never_fits_ignores_drain_and_health_but_wanted_by_does_not():
    sick = node("n", gpus=2, unusable=(0, 1), drained=True)
    assert never_fits(Request(gpus=2), sick) is None  # it may be repaired: not "never"
    assert never_fits(Request(gpus=2), sick, ignoring=(node_available,)) == "drained"


def test_a_degraded_gpu_gets_work_only_when_no_healthy_one_fits():
    nodes = (
        node("a", gpus=2, degraded=(0,)),  # least loaded, but its free GPUs include a sick one
        node("b", gpus=2, connections=5),
        node("c", gpus=1, unusable=(0,)),
    )
    plan = schedule([job("j1", gpus=1), job("j2", gpus=2)], ClusterSnapshot(nodes), now=0.0)
    placed = {a.job_id: (a.node, a.gpus) for a in plan.assignments}
    assert placed["j1"] == ("b", (0,))  # b has no degraded GPU: it wins over the idle a
    assert placed["j2"] == ("a", (1, 0))  # nothing healthy left for two: a, healthy first
    plan = schedule([job("j3", gpus=1)], ClusterSnapshot(nodes[:1] + nodes[2:]), now=0.0)
    assert [(a.node, a.gpus) for a in plan.assignments] == [("a", (1,))]  # c's GPU failed


def test_free_capacity_counts_placed_and_running_allocations():
    cluster = ClusterSnapshot(
        (node("a", gpus=4),), (alloc("x", "a", cpus=2, gpus=[0]), alloc("y", "a", gpus=[2]))
    )
    assert free_capacity(cluster)["a"] == Free(5, 30 * GIB, frozenset({1, 3}), 2)


def test_schedule_spreads_by_least_connections_and_hands_out_distinct_gpus():
    cluster = ClusterSnapshot((node("a", gpus=2), node("b", gpus=2, connections=1)))
    plan = schedule([job(f"j{i}", gpus=1, submitted_at=i) for i in range(4)], cluster, 0.0)
    placed = [(a.job_id, a.node, a.gpus) for a in plan.assignments]
    assert placed == [("j0", "a", (0,)), ("j1", "a", (1,)), ("j2", "b", (0,)), ("j3", "b", (1,))]
    assert plan.waiting == ()


def test_schedule_serves_the_earliest_deadline_when_capacity_is_short():
    cluster = ClusterSnapshot((node("a", cpus=2),))
    jobs = [job("late", cpus=2, deadline=900), job("soon", cpus=2, deadline=100)]
    plan = schedule(jobs, cluster, 0.0)
    assert [a.job_id for a in plan.assignments] == ["soon"]
    assert [w.job_id for w in plan.waiting] == ["late"]


def test_schedule_never_uses_unavailable_nodes_and_marks_deadline_risk():
    cluster = ClusterSnapshot((node("down", power=Power.UNAVAILABLE), node("up")))
    plan = schedule([job("j", runtime_s=100, deadline=50)], cluster, 0.0)
    (placed,) = plan.assignments
    assert (placed.node, placed.at_risk, placed.expected_finish) == ("up", True, 100.0)


def test_schedule_wakes_a_sleeping_node_when_awake_ones_are_full():
    cluster = ClusterSnapshot(
        (
            node("up", gpus=1),
            node("slow", power=Power.ASLEEP, gpus=1, resume_s=600),
            node("quick", power=Power.ASLEEP, gpus=1, resume_s=20, connections=5),
        ),
        (alloc("busy", "up", gpus=[0]),),
    )
    plan = schedule([job("j", gpus=1, runtime_s=60, deadline=100)], cluster, 0.0)
    assert plan.assignments == ()
    (wake,) = plan.wakes
    assert (wake.node, wake.meets_deadline) == ("quick", True)  # only it makes the deadline
    assert "quick" in plan.waiting[0].reason


def test_schedule_holds_a_woken_nodes_capacity_for_its_job():
    cluster = ClusterSnapshot(
        (node("s1", power=Power.ASLEEP, cpus=4), node("s2", power=Power.ASLEEP, cpus=4))
    )
    plan = schedule([job("x", cpus=4), job("y", cpus=4, submitted_at=1)], cluster, 0.0)
    assert sorted(w.node for w in plan.wakes) == ["s1", "s2"]


def test_jobs_of_one_pass_fill_the_node_it_wakes_before_waking_another():
    """Released together (held jobs at the cheap hour), four 1-GPU jobs wake one 4-GPU node,
    not four (least connections would rank each still-empty sleeper first); a fifth wakes a
    second. A job whose deadline the woken node misses wakes one that makes it instead."""
    sleepers = tuple(node(f"s{i}", power=Power.ASLEEP, gpus=4, resume_s=60) for i in range(4))
    jobs = [job(f"j{i}", gpus=1, submitted_at=i) for i in range(5)]
    plan = schedule(jobs, ClusterSnapshot(sleepers), 0.0)
    assert [w.node for w in plan.wakes] == ["s0"] * 4 + ["s1"]
    quick = node("z-quick", power=Power.ASLEEP, gpus=4, resume_s=5)
    first = job("first", gpus=1, runtime_s=10, deadline=100)  # s0 (60 s) makes it
    urgent = job("urgent", gpus=1, runtime_s=60, deadline=110)  # s0 would end at 120
    plan = schedule([first, urgent], ClusterSnapshot((sleepers[0], quick)), 0.0)
    assert {w.job_id: w.node for w in plan.wakes} == {"first": "s0", "urgent": "z-quick"}


def test_a_job_waits_for_a_node_already_waking_instead_of_waking_another():
    cluster = ClusterSnapshot(
        (
            node("a-asleep", power=Power.ASLEEP, cpus=4),
            node("z-waking", power=Power.WAKING, cpus=4),
        )
    )
    plan = schedule([job("x", cpus=4)], cluster, 0.0)
    assert plan.wakes == ()
    assert plan.waiting[0].reason == "waiting for z-waking to wake"
    two = schedule([job("x", cpus=4), job("y", cpus=4, submitted_at=1)], cluster, 0.0)
    assert [w.node for w in two.wakes] == ["a-asleep"]  # the second job needs another


def test_schedule_says_why_a_job_waits():
    plan = schedule([job("j", gpus=1)], ClusterSnapshot((node("cpu-only"),)), 0.0)
    assert plan.waiting[0].job_id == "j"
    assert "room" in plan.waiting[0].reason


def test_pick_answers_least_connections_with_its_figures():
    cluster = ClusterSnapshot(
        (node("a", connections=5), node("b", connections=2, gpus=1), node("c", power=Power.ASLEEP)),
        (alloc("j", "b"),),
    )
    assert pick(Request(), cluster) == Picked("b", 3, 1, 0.0, (0,))
    assert pick(Request(labels={"x": "y"}), cluster) == (
        "no node in the fleet could ever take this request"
    )
    busy = ClusterSnapshot((node("a", gpus=1),), (alloc("j", "a", gpus=[0]),))
    assert pick(Request(gpus=1), busy) == "no awake node has room now (1 of 1 awake could take it)"
    assert pick(Request(), ClusterSnapshot(())) == "no nodes known"


def test_estimate_now_wake_queued_and_unknown():
    awake = ClusterSnapshot((node("a", cpus=2),))
    now_est = estimate(job("new", cpus=2, runtime_s=60, deadline=100), [], awake, 1000.0)
    assert (now_est.start, now_est.finish, now_est.basis, now_est.at_risk) == (
        1000.0,
        1060.0,
        "now",
        True,
    )

    asleep = ClusterSnapshot((node("s", power=Power.ASLEEP, resume_s=45),))
    wake_est = estimate(job("new", runtime_s=10, deadline=2000), [], asleep, 1000.0)
    assert (wake_est.start, wake_est.node, wake_est.basis, wake_est.at_risk) == (
        1045.0,
        "s",
        "wake",
        False,
    )

    busy = ClusterSnapshot(
        (node("a", cpus=2),),
        (alloc("x", "a", cpus=1, ends_at=1300), alloc("y", "a", cpus=1, ends_at=1200)),
    )
    queued = estimate(job("new", cpus=1, runtime_s=100), [], busy, 1000.0)
    assert (queued.start, queued.finish, queued.basis) == (1200.0, 1300.0, "queued")
    whole = estimate(job("new", cpus=2, runtime_s=100), [], busy, 1000.0)
    assert whole.start == 1300.0

    never = estimate(job("new", cpus=64), [], busy, 1000.0)
    assert (never.start, never.basis) == (None, "unknown")


def test_a_node_whose_agent_cannot_verify_commands_gets_nothing_for_now():
    """No key (or another key) on the agent: refused by `verifies_commands`, first after
    power and drain; transient, since installing the key fixes it."""
    keyless = replace(node("n"), commands_refused="no key")
    assert verifies_commands(Request(), keyless, FREE) == "command key"
    assert verifies_commands(Request(), node("n"), FREE) is None
    assert rejection(Request(cpus=99), keyless, FREE) == "command key"
    assert never_fits(Request(cpus=1), keyless) is None
    plan = schedule([job("j", cpus=1)], ClusterSnapshot((keyless,)), 1000.0)
    assert not plan.assignments
