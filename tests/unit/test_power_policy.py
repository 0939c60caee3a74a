"""Power policy: one test per rule, then the whole `decide`."""

from __future__ import annotations

from dataclasses import replace

import pytest

from coordinator.core.nodestate import NodeState
from coordinator.power.policy import (
    SLEEP_RULES,
    Action,
    NodePower,
    PowerPolicy,
    WakeWanted,
    awake_long_enough,
    decide,
    first_reason,
    floor_reason,
    idle_long_enough,
    idle_since,
    is_online,
    no_work,
    not_exempt,
    not_wanted,
    resume_timeout,
    sleep_capable,
    sleep_refusal,
    wake_refusal,
)

NOW = 10_000.0
POLICY = PowerPolicy(
    sleep_idle=True,
    idle_after_s=60,
    min_awake=0,
    min_awake_time_s=100,
    min_asleep_time_s=50,
    max_sleeps_per_min=10,
    resume_timeout_s=30,
)


def idle(name: str = "n1", **kw: object) -> NodePower:
    """A node every sleep rule lets go."""
    base = NodePower(name=name, state=NodeState.ONLINE, state_since=0.0, idle_since=NOW - 120)
    return replace(base, **kw)  # type: ignore[arg-type]


def asleep(name: str = "s1", **kw: object) -> NodePower:
    base = NodePower(name=name, state=NodeState.ASLEEP, state_since=NOW - 100)
    return replace(base, **kw)  # type: ignore[arg-type]


def test_an_idle_node_passes_every_sleep_rule() -> None:
    assert first_reason(SLEEP_RULES, idle(), POLICY, NOW) is None


@pytest.mark.parametrize(
    ("rule", "node", "policy", "reason"),
    [
        (is_online, idle(state=NodeState.OFFLINE), POLICY, "it is offline, not online"),
        (not_exempt, idle(), replace(POLICY, never_sleep=frozenset({"n1"})), "never_sleep"),
        (sleep_capable, idle(can_sleep=False), POLICY, "no sleep method"),
        (sleep_capable, idle(can_wake=False), POLICY, "no way to wake"),
        (no_work, idle(jobs=2), POLICY, "2 job(s) placed or running"),
        (idle_long_enough, idle(idle_since=None), POLICY, "busy"),
        (idle_long_enough, idle(idle_since=NOW - 59), POLICY, "idle 59s of 60s"),
        (not_wanted, idle(wanted=True), POLICY, "a pending job could run on it"),
        (awake_long_enough, idle(state_since=NOW - 99), POLICY, "awake 99s, min_awake_time"),
    ],
)
def test_each_sleep_rule_refuses_with_its_reason(
    rule: object, node: NodePower, policy: PowerPolicy, reason: str
) -> None:
    assert rule(idle(), POLICY, NOW) is None  # type: ignore[operator]
    said = rule(node, policy, NOW)  # type: ignore[operator]
    assert said is not None
    assert reason in said


def test_idle_since_starts_keeps_and_resets() -> None:
    def at(previous: float | None, cpu: float, gpu: float | None, jobs: int) -> float | None:
        return idle_since(
            previous, cpu_util_pct=cpu, gpu_util_pct=gpu, jobs=jobs, ts=9.0, policy=POLICY
        )

    assert at(None, 3.0, None, 0) == 9.0
    assert at(5.0, 3.0, 1.0, 0) == 5.0
    assert at(5.0, 50.0, None, 0) is None  # CPU over the threshold
    assert at(5.0, 1.0, 80.0, 0) is None  # a GPU busy
    assert at(5.0, 0.0, 0.0, 1) is None  # a job, even an idle one


def test_floor_min_awake_and_spare_gpus() -> None:
    a, b = idle("a", free_gpus=2), idle("b", free_gpus=1)
    assert floor_reason(a, [a, b], replace(POLICY, min_awake=1)) is None
    assert "min_awake is 2" in str(floor_reason(a, [a, b], replace(POLICY, min_awake=2)))
    assert "spare_gpus is 2: 1 free" in str(floor_reason(a, [a, b], replace(POLICY, spare_gpus=2)))
    assert floor_reason(b, [a, b], replace(POLICY, spare_gpus=2)) is None


def test_manual_sleep_skips_idle_time_but_not_work_or_floor() -> None:
    fresh = idle("a", idle_since=None, state_since=NOW)
    assert sleep_refusal(fresh, [fresh, idle("b")], POLICY, NOW) is None
    assert "job" in str(sleep_refusal(idle("a", jobs=1), [idle("b")], POLICY, NOW))
    floor = replace(POLICY, min_awake=1)
    assert "min_awake" in str(sleep_refusal(idle("a"), [idle("a")], floor, NOW))


@pytest.mark.parametrize(
    ("node", "reason"),
    [
        (asleep(state=NodeState.FAILED), "dormouse clear"),
        (asleep(state=NodeState.ONLINE), "it is online, not asleep"),
        (asleep(can_wake=False), "no way to wake"),
        (asleep(state_since=NOW - 10), "asleep 10s, min_asleep_time is 50s"),
    ],
)
def test_wake_refusals(node: NodePower, reason: str) -> None:
    assert wake_refusal(asleep(), POLICY, NOW) is None
    assert reason in str(wake_refusal(node, POLICY, NOW))


def test_decide_sleeps_idle_nodes_longest_idle_first_within_the_rate() -> None:
    nodes = [idle("a", idle_since=NOW - 70), idle("b", idle_since=NOW - 500), idle("c")]
    policy = replace(POLICY, max_sleeps_per_min=2)
    assert [a.node for a in decide(nodes, [], policy, NOW)] == ["b", "c"]
    assert [a.node for a in decide(nodes, [], policy, NOW, recent_sleeps=[NOW - 30])] == ["b"]
    assert len(decide(nodes, [], policy, NOW, recent_sleeps=[NOW - 61, NOW - 90])) == 2


def test_decide_keeps_min_awake() -> None:
    nodes = [idle("a"), idle("b"), idle("c")]
    acts = decide(nodes, [], replace(POLICY, min_awake=2), NOW)
    assert acts == [Action("sleep", "a", "idle for 120s")]


def test_decide_sleeps_nothing_when_sleep_is_off() -> None:
    assert decide([idle("a")], [], replace(POLICY, sleep_idle=False), NOW) == []


def test_decide_wakes_what_placement_wants_once_and_only_if_allowed() -> None:
    nodes = [asleep("s1"), asleep("s2", state_since=NOW - 5), idle("a", jobs=1)]
    wanted = [WakeWanted("s1", "job j1"), WakeWanted("s1", "job j2"), WakeWanted("s2", "job j3")]
    assert decide(nodes, wanted, POLICY, NOW) == [Action("wake", "s1", "job j1")]


def test_decide_fails_a_node_not_back_in_time_and_does_not_wake_it_again() -> None:
    waking = NodePower(name="w", state=NodeState.WAKING, state_since=NOW - 31)
    late = decide([waking], [WakeWanted("w", "job")], POLICY, NOW)
    assert late == [
        Action("fail", "w", "not back 31s after the wake (timeout 30s: resume_timeout)")
    ]
    assert decide([replace(waking, state_since=NOW - 29)], [], POLICY, NOW) == []


def test_a_waking_node_counts_as_awake_for_the_floor() -> None:
    waking = NodePower(name="w", state=NodeState.WAKING, state_since=NOW)
    assert decide([idle("a"), waking], [], replace(POLICY, min_awake=1), NOW) == [
        Action("sleep", "a", "idle for 120s")
    ]


SLOW = replace(
    POLICY, resume_timeout_s=300.0, resume_timeout_factor=3.0, resume_timeout_floor_s=60.0
)


def test_a_slow_but_healthy_node_is_not_failed_under_its_learned_timeout() -> None:
    """Resumes take 500 s on this node: the fixed 300 s fails it, 3 x p95 (1500 s) does not."""
    waking = NodePower(name="slow", state=NodeState.WAKING, state_since=NOW - 500)
    fixed = replace(SLOW, resume_timeout_factor=0.0)
    assert [a.kind for a in decide([waking], [], fixed, NOW)] == ["fail"]
    learned = replace(waking, resume_p95_s=500.0)
    assert decide([learned], [], SLOW, NOW) == []
    assert resume_timeout(learned, SLOW) == (1500.0, "3 x p95 500s")


def test_a_new_node_gets_the_first_wake_timeout_until_its_own_wakes_are_measured() -> None:
    """A node resuming in 500 s whose shape's p95 (15 s) is all that is known: the learned
    timeout would fail it at 60 s; until its own wakes count, it gets first_wake_timeout."""
    new = NodePower(name="new", state=NodeState.WAKING, state_since=NOW - 500, resume_p95_s=15.0)
    first = replace(SLOW, first_wake_timeout_s=900.0)
    assert decide([replace(new, first_wakes=True)], [], first, NOW) == []
    assert resume_timeout(replace(new, first_wakes=True), first) == (
        900.0,
        "first_wake_timeout: its own wakes not measured",
    )
    assert [a.kind for a in decide([new], [], first, NOW)] == ["fail"]  # its own p95 15 s
    silent = replace(new, first_wakes=True, state_since=NOW - 901)
    assert [a.kind for a in decide([silent], [], first, NOW)] == ["fail"]  # dead: noticed
    off = replace(first, first_wake_timeout_s=0.0)
    assert [a.kind for a in decide([replace(new, first_wakes=True)], [], off, NOW)] == ["fail"]


def test_a_dead_fast_node_is_noticed_within_its_learned_timeout() -> None:
    """Resumes take 15 s: a node silent 61 s after its wake is failed (floor 60 s), where
    the fixed timeout would wait 300 s."""
    dead = NodePower(name="dead", state=NodeState.WAKING, state_since=NOW - 61, resume_p95_s=15.0)
    (action,) = decide([dead], [], SLOW, NOW)
    assert action == Action(
        "fail", "dead", "not back 61s after the wake (timeout 60s: the floor, over 3 x p95 15s)"
    )
    assert decide([replace(dead, resume_p95_s=None)], [], SLOW, NOW) == []


def test_a_forecast_pool_wakes_the_fastest_asleep_nodes_until_it_is_reached() -> None:
    busy = idle("up", jobs=1, idle_since=None, gpus=8, free_gpus=2)
    slow = asleep("slow", gpus=4, free_gpus=4, resume_p95_s=500.0)
    fast = asleep("fast", gpus=4, free_gpus=4, resume_p95_s=60.0)
    fresh = asleep("fresh", gpus=8, free_gpus=8, resume_p95_s=10.0, state_since=NOW - 10)
    nodes = [busy, slow, fast, fresh]
    acts = decide(nodes, [], POLICY, NOW, pool=5)  # 2 awake; fresh is under min_asleep_time
    assert acts == [Action("wake", "fast", "spare pool: 5 free GPU(s) forecast, 2 awake")]
    assert [a.node for a in decide(nodes, [], POLICY, NOW, pool=7)] == ["fast", "slow"]
    assert decide(nodes, [], POLICY, NOW, pool=2) == []
    assert decide(nodes, [], POLICY, NOW) == []  # fixed: spare_gpus only keeps nodes up


def test_a_forecast_pool_keeps_its_gpus_awake() -> None:
    a, b = idle("a", gpus=4, free_gpus=4), idle("b", gpus=4, free_gpus=4)
    assert [x.node for x in decide([a, b], [], POLICY, NOW)] == ["a", "b"]
    assert [x.node for x in decide([a, b], [], POLICY, NOW, pool=4)] == ["a"]
    assert decide([a, b], [], POLICY, NOW, pool=8) == []
