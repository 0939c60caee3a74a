"""`dormouse slurm advise`'s pure part, by hand: the runs it plans, each against never
sleeping, the recommended timer, ResumeTimeout from measured wakes, the slurm.conf lines."""

from __future__ import annotations

from dataclasses import replace

from coordinator.settings import Power
from coordinator.sim.metrics import Summary
from coordinator.slurm import advice

BASE = Summary(
    jobs=10, completed=10, deadline_hits_pct=None, deadline_hits_gpu_h_pct=None,
    mean_wait_s=20.0, p95_wait_s=60.0,
    energy_kwh=1000.0, energy_cost=150.0, co2_kg=None, lower_bound_kwh=500.0, sleeps=0,
    wakes=0, failures=0, wrongly_failed=0, held=0, max_toggles_per_node_hour=0, span_h=24.0,
)  # fmt: skip


def test_the_runs_are_never_sleeping_each_timer_as_slurm_applies_it_and_dormouse():
    power = Power(min_awake=2, spare_gpus=8, idle_after=900.0, never_sleep=frozenset({"a"}))
    planned = advice.runs(power, [600.0, 3600.0])
    assert [r.name for r in planned] == [
        "never sleep",
        "SuspendTime=10m",
        "SuspendTime=1h",
        "dormouse",
    ]
    never, ten, hour, ours = planned
    assert not never.sim.sleep
    assert all(r.sim.fifo and not r.sim.defer for r in planned)  # Slurm places, in order
    assert (ten.knobs.idle_after_s, hour.knobs.idle_after_s) == (600.0, 3600.0)
    assert (ten.knobs.min_awake, ten.knobs.spare_gpus, ten.knobs.never_sleep) == (0, 0, frozenset())
    assert not ten.sim.learned_timeout  # Slurm's ResumeTimeout is fixed
    assert (ours.knobs.min_awake, ours.knobs.spare_gpus, ours.knobs.idle_after_s) == (2, 8, 900.0)
    assert ours.sim.learned_timeout
    assert ours.knobs.sleep_idle


def test_each_row_is_against_never_sleeping():
    planned = advice.runs(Power(), [600.0, 1800.0])
    summaries = {
        "never sleep": BASE,
        "SuspendTime=10m": replace(BASE, energy_kwh=700.0, energy_cost=100.0, mean_wait_s=80.0),
        "SuspendTime=30m": replace(BASE, energy_kwh=800.0, energy_cost=120.0, mean_wait_s=30.0),
        "dormouse": replace(BASE, energy_kwh=750.0, energy_cost=110.0, mean_wait_s=25.0),
    }
    rows = {r.name: r for r in advice.rows(summaries, planned)}
    ten = rows["SuspendTime=10m"]
    assert (ten.kwh_saved, ten.saved_pct, ten.cost_saved, ten.wait_added_s) == (300, 30, 50, 60)
    assert rows["never sleep"].kwh_saved == 0
    assert rows["dormouse"].wait_added_s == 5.0
    table = list(rows.values())
    assert advice.recommend(table, max_wait_added_s=300).name == "SuspendTime=10m"
    assert advice.recommend(table, max_wait_added_s=30).name == "SuspendTime=30m"
    assert advice.recommend(table, max_wait_added_s=1).name == "SuspendTime=30m"  # the longest


def test_resume_timeout_covers_the_p99_wake_with_margin_in_whole_minutes():
    wakes = advice.wake_times([100.0] * 98 + [200.0, 400.0], assumed_s=60.0)
    # p99 of 100 samples is the 99th: 200 s; x 1.5 = 300 s, already whole minutes
    assert (wakes.samples, wakes.p50_s, wakes.p99_s, wakes.resume_timeout_s) == (100, 100, 200, 300)
    slow = advice.wake_times([250.0, 260.0, 270.0], assumed_s=60.0)
    assert slow.resume_timeout_s == 420.0  # 270 x 1.5 = 405 -> 7 min
    none = advice.wake_times([], assumed_s=120.0)
    assert none.resume_timeout_s == advice.RESUME_FLOOR_S
    assert "no wakes measured" in none.basis


def test_the_slurm_conf_lines_name_the_programs_and_the_timers():
    row = advice.Row("SuspendTime=30m", 1800.0, 1, 1, 1, 1, 1, 1, 1, 1)
    wakes = advice.wake_times([100.0], assumed_s=60.0)
    lines = advice.conf_lines(row, wakes, dormouse_decides=False)
    assert lines[:3] == list(advice.PROGRAMS)
    assert "SuspendTime=1800" in lines
    assert "ResumeTimeout=300" in lines
    ours = advice.conf_lines(row, wakes, dormouse_decides=True)
    assert any(line.startswith("SuspendTime=604800") for line in ours)
