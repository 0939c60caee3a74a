"""The bench's hold bound with the fleet's size in it (`tests/bench/fleet_bound.py`), by hand."""

from __future__ import annotations

import pytest

from coordinator.power.tariff import Rate
from coordinator.sim.engine import JobRun
from coordinator.sim.fleet import NodeType
from coordinator.sim.trace import TraceJob
from tests.bench.fleet_bound import due, fleet_hold_bound

H = 3600.0
RATE = Rate((0.0, 12 * H), (1.0, 0.5), 24 * H)  # 1.0 until noon, 0.5 after
ONE_GPU = NodeType(name="n", count=1, gpus=1, cpus=4, mem_bytes=0, idle_w=0.0, busy_w=1000.0,
                   asleep_w=0.0, resume_latency_s=0.0)  # fmt: skip  # 1 kW per busy GPU


def job(job_id: str, *, submit_h: float = 11.0, deadline_h: float = 13.0) -> TraceJob:
    return TraceJob(
        id=job_id, submit_s=submit_h * H, runtime_s=H, gpus=1, cpus=1, mem_bytes=0,
        deadline_s=deadline_h * H,
    )  # fmt: skip


def test_one_gpu_holds_one_of_two_jobs_in_its_cheap_hour():
    """Two 1-hour jobs at 11:00, due 13:00: at once each costs 1 kWh at 1.0; with room for
    both, each starts at noon (0.5). One GPU has one cheap hour before 13:00: the least cost
    is 1.0 + 0.5, so the room is 0.5, not 1.0."""
    jobs = [job("a"), job("b")]
    bound = fleet_hold_bound(jobs, RATE, ONE_GPU, gpus=1)
    assert bound.at_once == pytest.approx(2.0)
    assert bound.best == pytest.approx(1.5)
    assert bound.room == pytest.approx(0.5)
    assert fleet_hold_bound(jobs, RATE, ONE_GPU, gpus=2).best == pytest.approx(1.0)


def test_a_job_is_not_split_below_its_cheapest_whole_start():
    """A 14-hour job may not be spread over two nights' cheap hours: its whole start is the
    floor when that costs more than the split."""
    long = TraceJob(id="l", submit_s=12 * H, runtime_s=14 * H, gpus=1, cpus=1, mem_bytes=0,
                    deadline_s=40 * H)  # fmt: skip
    bound = fleet_hold_bound([long], RATE, ONE_GPU, gpus=1)
    assert bound.best == pytest.approx(12 * 0.5 + 2 * 1.0)  # noon to 02:00: 2 h at 1.0


def test_no_schedule_on_the_fleet_is_said_and_due_makes_one():
    jobs = [job("a", deadline_h=12.0), job("b", deadline_h=12.0)]  # two GPU-hours in one hour
    with pytest.raises(ValueError, match="no schedule meets every deadline on 1 GPUs"):
        fleet_hold_bound(jobs, RATE, ONE_GPU, gpus=1)
    ran = [JobRun(jobs[0], 1, start_s=11 * H, end_s=12 * H),
           JobRun(jobs[1], 1, start_s=12 * H, end_s=13 * H)]  # fmt: skip
    late = due(jobs, ran)
    assert [j.deadline_s for j in late] == [12 * H, 13 * H]
    assert fleet_hold_bound(late, RATE, ONE_GPU, gpus=1).best == pytest.approx(1.0 + 0.5)
