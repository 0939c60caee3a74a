"""The simulator's figures that weigh jobs and holds, by hand: deadline hits by GPU-hours,
and a policy's holds as a share of the most holding could save."""

from __future__ import annotations

import pytest

from coordinator.cli.simulate import captured_pct
from coordinator.sim.engine import JobRun
from coordinator.sim.metrics import gpu_hour_hits_pct
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


def test_captured_is_the_cut_against_the_twin_over_the_bound():
    # the twin holding nothing costs 100, the policy 95: a 5 % cut of a 10 % bound
    assert captured_pct(95.0, 100.0, 10.0) == pytest.approx(50.0)
    assert captured_pct(100.0, 100.0, 10.0) == 0.0
    assert captured_pct(103.0, 100.0, 10.0) == pytest.approx(-30.0)  # holds that cost more
    assert captured_pct(95.0, None, 10.0) is None  # no twin: a policy that holds nothing
    assert captured_pct(95.0, 100.0, 0.0) is None  # a flat price: nothing to capture
