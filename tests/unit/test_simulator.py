"""The simulator: hand-computed tiny traces, the same decisions as the daemon's code, seeds."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from coordinator.core import snapshot, tick
from coordinator.daemon import dispatch, power_loop
from coordinator.placement.scheduler import schedule
from coordinator.power.policy import PowerPolicy, decide
from coordinator.sim import engine
from coordinator.sim.engine import POLICIES, Simulation, Step
from coordinator.sim.fleet import NodeType, parse_fleet
from coordinator.sim.metrics import most_in_an_hour, summarise
from coordinator.sim.trace import TraceJob, TraceOptions, parse_trace
from shared.errors import ConfigError

POLICY = PowerPolicy(
    idle_after_s=100,
    min_awake=0,
    min_awake_time_s=1,
    min_asleep_time_s=1,
    max_sleeps_per_min=10,
    resume_timeout_s=50,
)


def kind(name: str = "n", count: int = 1, **kw: Any) -> NodeType:
    """1 GPU, 100 W idle, 200 W busy, 10 W asleep, back 10 s after a wake."""
    base = NodeType(
        name=name,
        count=count,
        gpus=1,
        cpus=4,
        mem_bytes=2**30,
        idle_w=100,
        busy_w=200,
        asleep_w=10,
        resume_latency_s=10,
    )
    return dataclasses.replace(base, **kw)


def job(id_: str, submit: float, runtime: float, deadline: float | None = None) -> TraceJob:
    return TraceJob(id_, submit, runtime, 1, 1, 0, deadline)


def test_one_node_two_jobs_energy_and_waits_by_hand():
    trace = [job("a", 0, 100), job("b", 1000, 100, deadline=2000)]
    outcome = Simulation(trace, [kind()], POLICIES["dormouse"], POLICY).run()
    result = summarise(outcome)
    # a: 0..100 busy 200 W; idle 100..200 at 100 W, sleeps at 200; asleep 200..1000 at 10 W;
    # b arrives, wake, 1000..1010 waking at 100 W, b 1010..1110 busy at 200 W
    assert outcome.nodes[0].energy_j == pytest.approx(20_000 + 10_000 + 8_000 + 1_000 + 20_000)
    assert (result.sleeps, result.wakes, result.completed) == (1, 1, 2)
    assert result.mean_wait_s == pytest.approx(5.0)
    assert result.deadline_hits_pct == 100.0
    # the oracle: both jobs' busy energy, sleep power for the other 910 s of the 1110
    assert result.lower_bound_kwh == pytest.approx((40_000 + 910 * 10) / 3.6e6)
    assert result.max_toggles_per_node_hour == 2


def test_a_deadline_only_an_early_wake_can_meet():
    """n-000 runs a long job; b's deadline leaves 5 s of slack over resume + runtime, so
    only waking n-001 the moment b arrives meets it."""
    trace = [job("long", 0, 1000), job("b", 500, 100, deadline=500 + 10 + 100 + 5)]
    outcome = Simulation(trace, [kind(count=2)], POLICIES["dormouse"], POLICY).run()
    b = outcome.jobs[1]
    assert (b.start_s, b.end_s) == (510, 610)
    assert summarise(outcome).deadline_hits_pct == 100.0
    n0, n1 = outcome.nodes
    assert n0.energy_j == pytest.approx(1000 * 200)
    # idle 0..100, asleep 100..500, waking 500..510, busy 510..610, idle 610..710, asleep to 1000
    assert n1.energy_j == pytest.approx(10_000 + 4_000 + 1_000 + 20_000 + 10_000 + 2_900)


def test_a_wake_that_fails_is_noticed_after_resume_timeout_and_another_node_runs_the_job():
    fleet = [kind("bad", wake_failure=1.0), kind("good")]
    trace = [job("j", 500, 100)]
    fixed_first = dataclasses.replace(POLICY, first_wake_timeout_s=0.0)  # resume_timeout: 50 s
    outcome = Simulation(
        [job("warm", 0, 1), *trace], fleet, POLICIES["dormouse"], fixed_first
    ).run()
    result = summarise(outcome)
    j = outcome.jobs[1]
    # both asleep from 101 (idle 100 s after the warm-up job); bad (first by name) woken at
    # 500, failed just after 550, good woken then and back 10 s later
    assert j.start_s == pytest.approx(560, abs=1e-3)
    assert (result.wakes, result.failures) == (2, 1)
    assert outcome.nodes[0].state.value == "failed"


def test_the_same_seed_gives_the_same_report_and_another_seed_may_not():
    fleet = [kind(count=4, resume_jitter_s=8, wake_failure=0.3)]
    trace = [job(f"j{i}", 400 * i, 150 + 37 * (i % 5)) for i in range(40)]

    def run(seed: int) -> object:
        return summarise(Simulation(trace, fleet, POLICIES["dormouse"], POLICY, seed=seed).run())

    assert run(7) == run(7)
    assert any(run(7) != run(seed) for seed in range(1, 6))


def test_the_simulator_calls_the_daemons_own_policy_objects():
    """Same objects: the names the simulator, the dispatcher and the power loop call are
    one function each; and a recorded sequence of passes replayed through them gives the
    same decisions."""
    assert engine.schedule is dispatch.schedule is schedule
    assert engine.ClusterState is snapshot.ClusterState  # the daemon's KeptCluster holds one
    assert engine.PowerBook is power_loop.PowerBook
    steps: list[Step] = []
    fleet = [kind(count=3, resume_jitter_s=3, wake_failure=0.1)]
    trace = [job(f"j{i}", 150 * i, 90 + 20 * (i % 4)) for i in range(30)]
    Simulation(trace, fleet, POLICIES["dormouse"], POLICY, seed=3, record=steps.append).run()
    assert len(steps) > 30
    assert any(s.actions for s in steps)
    for step in steps:
        assert dispatch.schedule(list(step.jobs), step.cluster, step.now) == step.plan
        policy = dataclasses.replace(POLICY, sleep_idle=True)
        replayed = decide(step.nodes, step.wanted, policy, step.now, step.recent_sleeps)
        assert tuple(replayed) == step.actions  # the kept book decided as the definition


def test_the_simulator_and_the_daemon_build_the_policy_inputs_with_one_builder():
    """The per-tick glue (snapshots, power inputs, wake reasons, the sleep window, resume
    estimates) is one set of objects in `core.tick`, held by both callers."""
    assert engine.node_snapshot is snapshot.tick.node_snapshot is tick.node_snapshot
    assert engine.node_power is power_loop.tick.node_power is tick.node_power
    assert engine.wanted_by is power_loop.tick.wanted_by is tick.wanted_by
    assert engine.wake_reasons is power_loop.tick.wake_reasons is tick.wake_reasons
    assert engine.recent_sleeps is power_loop.tick.recent_sleeps is tick.recent_sleeps
    assert engine.ResumeLatencies is power_loop.ResumeLatencies is dispatch.ResumeLatencies


def test_baselines_never_sleep_and_fifo_ignores_deadlines():
    trace = [job("a", 0, 100), job("b", 1, 10, deadline=20), job("c", 2, 10, deadline=15)]
    for name in ("always-on", "always-on-fifo", "round-robin"):
        result = summarise(Simulation(trace, [kind()], POLICIES[name], POLICY).run())
        assert (result.sleeps, result.wakes) == (0, 0)
    edf = Simulation(trace, [kind()], POLICIES["always-on"], POLICY).run()
    fifo = Simulation(trace, [kind()], POLICIES["always-on-fifo"], POLICY).run()
    assert edf.jobs[2].start_s < edf.jobs[1].start_s  # c's deadline is earlier
    assert fifo.jobs[1].start_s < fifo.jobs[2].start_s  # submit order


def test_a_job_larger_than_any_node_runs_as_parts():
    trace = [TraceJob("big", 0, 100, 3, 3, 0, None)]
    outcome = Simulation(trace, [kind(count=3)], POLICIES["always-on"], POLICY).run()
    assert outcome.jobs[0].parts == 3
    assert (outcome.jobs[0].start_s, outcome.jobs[0].end_s) == (0, 100)
    assert all(n.energy_j == pytest.approx(100 * 200) for n in outcome.nodes)


def test_toggles_counted_within_any_hour():
    node = Simulation([job("a", 0, 1)], [kind()], POLICIES["dormouse"], POLICY).nodes[0]
    node.toggles = [0, 100, 3500, 3599, 3700, 9000]
    assert most_in_an_hour(node) == 4  # 100..3700


NATIVE = """submit_s,runtime_s,gpus,cpus,mem_gb,deadline_s
10,60,1,4,16,500
0,30,0,2,1.5,
"""
ELASTICFLOW = (
    "job_id,submission_time,num_iteration,model_name,deadline,batch_size,num_gpu,duration\n"
    "x1,100,5,resnet50,160,256,2,50\n"
)


def test_trace_formats_are_picked_from_the_header():
    native = parse_trace(NATIVE.splitlines(), TraceOptions(deadline_factor=2))
    assert [(j.submit_s, j.deadline_s) for j in native] == [(0, 60), (10, 500)]
    assert native[0].mem_bytes == int(1.5 * 2**30)
    (flow,) = parse_trace(ELASTICFLOW.splitlines(), TraceOptions(deadline_factor=3, cpus_per_gpu=8))
    assert (flow.id, flow.gpus, flow.cpus, flow.runtime_s, flow.deadline_s) == (
        "x1",
        2,
        16,
        50,
        250,
    )
    (none,) = parse_trace(ELASTICFLOW.splitlines(), TraceOptions())
    assert none.deadline_s is None  # their own column (about 1x the duration) is not used


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a,b\n1,2\n", "unknown trace format"),
        ("submit_s,runtime_s,gpus,cpus,mem_gb\n1,x,0,1,1\n", "t:2: could not convert"),
        ("submit_s,runtime_s,gpus,cpus,mem_gb\n1,-5,0,1,1\n", "t:2: times and sizes"),
    ],
)
def test_bad_traces_name_the_line(text, reason):
    with pytest.raises(ConfigError, match=reason):
        parse_trace(text.splitlines(), TraceOptions(), "t")


def test_fleet_file():
    (gpu,) = parse_fleet(
        '[[nodes]]\nname = "gpu"\ncount = 2\ngpus = 8\ncpus = 64\nmem = "512G"\n'
        'idle_w = 500\nbusy_w = 3000\nresume_latency = "90s"\nwake_failure = 0.01\n'
    )
    assert (gpu.count, gpu.mem_bytes, gpu.resume_latency_s, gpu.asleep_w) == (
        2,
        512 * 10**9,
        90,
        10,
    )
    with pytest.raises(ConfigError, match="missing cpus"):
        parse_fleet('[[nodes]]\ncount = 1\nmem = "1G"\nidle_w = 1\nbusy_w = 2\n')
    with pytest.raises(ConfigError, match="one or more"):
        parse_fleet("x = 1\n")


def test_a_slow_node_is_failed_once_then_learned_where_the_fixed_timeout_fails_it_every_time():
    """Wakes take 500 s; the fixed timeout is 300 s; one node, jobs a day apart. Under
    dormouse-flat every wake fails: the node is back 200 s later but failed, and each job after
    the first waits for the operator's clear an hour after the failure (300 + 3600 s). dormouse
    gives an unmeasured node
    first_wake_timeout (900 s) and fails nothing; without it (0), it fails the first wakes
    (nothing measured yet), learns each 500 s resume when the node turns up late, and once it
    has the three a node needs (MIN_LATENCIES) waits 3 x 500 s: every job runs either way."""
    slow = kind(resume_latency_s=500)
    policy = dataclasses.replace(
        POLICY, resume_timeout_s=300, resume_timeout_factor=3.0, resume_timeout_floor_s=60
    )
    trace = [job(f"j{i}", 1000 + 86_400 * i, 100) for i in range(5)]
    no_first = dataclasses.replace(policy, first_wake_timeout_s=0.0)
    runs = {
        (name, p.first_wake_timeout_s): Simulation(
            trace, [slow], POLICIES[name], p, clear_after_s=3600
        ).run()
        for name, p in (("dormouse", policy), ("dormouse", no_first), ("dormouse-flat", policy))
    }
    flat = summarise(runs["dormouse-flat", 900.0])
    assert flat.completed == 5
    assert flat.wrongly_failed == flat.failures == 4  # the first job: the node starts awake
    assert flat.mean_wait_s == pytest.approx((0 + 4 * (300 + 3600)) / 5)
    first, late = summarise(runs["dormouse", 900.0]), summarise(runs["dormouse", 0.0])
    assert (first.completed, first.failures, first.wrongly_failed) == (5, 0, 0)
    assert (late.completed, late.failures, late.wrongly_failed) == (5, 3, 3)


def test_a_node_failed_wrongly_draws_idle_power_once_back_and_is_online_when_cleared():
    """The host does not know it was failed: back 500 s after the wake, it idles at full
    idle power until the operator clears it (an hour after the failure), then it is heard
    from and runs the job that wanted it."""
    slow = kind(resume_latency_s=500)
    policy = dataclasses.replace(POLICY, resume_timeout_s=300)
    trace = [job("a", 0, 100), job("b", 1000, 100)]
    outcome = Simulation(trace, [slow], POLICIES["dormouse-flat"], policy, clear_after_s=3600).run()
    b = outcome.jobs[1]
    assert (b.start_s, b.end_s) == (pytest.approx(4900), pytest.approx(5000))
    # a 0..100 at 200 W; idle 100..200 at 100 W; asleep 200..1000 at 10 W; waking
    # 1000..1300 at 100 W; failed, still resuming then back, idle 1300..4900 at 100 W;
    # cleared, b 4900..5000 at 200 W
    expected = 20_000 + 10_000 + 8_000 + 30_000 + 360_000 + 20_000
    assert outcome.nodes[0].energy_j == pytest.approx(expected)
    assert (outcome.failures, outcome.wrongly_failed) == (1, 1)


def test_a_forecast_spare_pool_is_awake_for_an_hour_that_was_busy_last_week():
    """Mondays 09:00-10:00 a 1-GPU job every 300 s; nodes take 600 s to wake. Week 0
    teaches the forecast; in week 1 the pool wakes a node a wake time before 09:00 (and
    the second when the window holds two jobs) and keeps both up through the hour, so every
    job starts at once. With the fixed spare of 0 every 200 s idle gap sends a node to
    sleep, and only each wake's last queued job is on time."""
    week, nine = 7 * 86400.0, 9 * 3600.0
    trace = [job(f"w{w}-{i}", w * week + nine + 300 * i, 100) for w in range(2) for i in range(12)]
    fleet = [kind(count=2, resume_latency_s=600)]
    on_time = {}
    for spare in ("fixed", "forecast"):
        policy = dataclasses.replace(POLICY, spare=spare, spare_max_gpus=2)
        outcome = Simulation(trace, fleet, POLICIES["dormouse"], policy).run()
        waits = [r.start_s - r.trace.submit_s for r in outcome.jobs[12:]]  # week 1
        on_time[spare] = sum(1 for w in waits if w < 1.0)
    assert on_time == {"forecast": 12, "fixed": 3}
