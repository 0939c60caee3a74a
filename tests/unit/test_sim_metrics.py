"""The simulator's figures that weigh jobs and holds, by hand: deadline hits by GPU-hours,
and a policy's holds as a share of the most holding could save."""

from __future__ import annotations

import pytest

from coordinator.sim.engine import JobRun
from coordinator.sim.metrics import HoldBound, gpu_hour_hits_pct
from coordinator.sim.trace import TraceJob

H = 3600.0


def run(job_id: str, gpus: int, hours: float, *, met: bool) -> JobRun:
    job = TraceJob(
        id=job_id, submit_s=0.0, runtime_s=hours * H, gpus=gpus, cpus=4, mem_bytes=0,
        deadline_s=hours * H,
    )  # fmt: skip
    end = hours * H if met else hours * H + 1
    return JobRun(job, parts=1, start_s=0.0, end_s=end)


def test_one_big_job_met_outweighs_fifteen_small_ones_missed():
    big = run("big", 64, 10.0, met=True)  # 640 GPU-hours
    small = [run(f"s{i}", 1, 1.0, met=False) for i in range(15)]  # 15 GPU-hours
    assert gpu_hour_hits_pct([big, *small]) == pytest.approx(100 * 640 / 655)
    assert gpu_hour_hits_pct([run("big", 64, 10.0, met=False), *small]) == 0.0
    met_small = [run(f"s{i}", 1, 1.0, met=True) for i in range(15)]
    assert gpu_hour_hits_pct([run("big", 64, 10.0, met=False), *met_small]) == pytest.approx(
        100 * 15 / 655
    )


def test_jobs_without_gpus_leave_it_undefined():
    cpu_only = run("c", 0, 2.0, met=True)
    assert gpu_hour_hits_pct([cpu_only]) is None
    assert gpu_hour_hits_pct([]) is None


def test_captured_is_the_cut_against_the_twin_over_the_bound_in_money():
    """The bound's room is the jobs' own energy at its price: at once 20, at best 10 (a
    50 % bound). A policy costing 95 against its twin's 100 (the fleet's whole energy)
    took 5 of the 10 it could: 50 %, not the 10 % that 5 % over 50 % would say."""
    bound = HoldBound(at_once=20.0, best=10.0)
    assert bound.pct == 50.0
    assert bound.captured_pct(95.0, 100.0) == pytest.approx(50.0)
    assert bound.captured_pct(100.0, 100.0) == 0.0
    assert bound.captured_pct(103.0, 100.0) == pytest.approx(-30.0)  # holds that cost more
    assert bound.captured_pct(95.0, None) is None  # no twin: a policy that holds nothing
    assert HoldBound(20.0, 20.0).captured_pct(95.0, 100.0) is None  # nothing to capture
    assert HoldBound(0.0, 0.0).pct == 0.0
