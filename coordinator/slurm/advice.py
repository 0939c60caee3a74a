"""`dormouse slurm advise`, the pure part: the power policies replayed (Slurm's fixed
`SuspendTime` timers and dormouse's own idle policy, all behind the same submit-order
placement, since Slurm places the jobs), and from the replays and the fleet's measured wake
times: what each saves against never sleeping, the wait it adds, a `ResumeTimeout` that
covers the wakes, and the slurm.conf lines to paste.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from coordinator.core.tick import quantile
from coordinator.power.policy import PowerPolicy
from coordinator.settings import Power
from coordinator.sim.engine import SimPolicy
from coordinator.sim.metrics import Summary

NEVER = "never sleep"
DORMOUSE = "dormouse"
RESUME_MARGIN = 1.5  # ResumeTimeout = p99 of the measured wakes x this, whole minutes
RESUME_FLOOR_S = 300.0  # and no shorter: a first boot after an update takes longer
SLURM_SUSPEND_RATE = 60  # slurm.conf's default SuspendRate: nodes a minute
PROGRAMS = (
    "SuspendProgram=/usr/bin/dormouse-slurm-suspend",
    "ResumeProgram=/usr/bin/dormouse-slurm-resume",
    "ResumeFailProgram=/usr/bin/dormouse-slurm-resume-fail",
)


@dataclass(frozen=True, slots=True)
class Run:
    """One replay: the simulator's policy and its power knobs."""

    name: str
    sim: SimPolicy
    knobs: PowerPolicy
    suspend_time_s: float | None = None  # Slurm's timer, for its rows


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    suspend_time_s: float | None
    kwh: float
    kwh_saved: float
    saved_pct: float | None
    cost_saved: float | None
    mean_wait_s: float | None
    wait_added_s: float | None  # mean wait over never sleeping's
    p95_wait_s: float | None
    wakes: int


@dataclass(frozen=True, slots=True)
class WakeTimes:
    samples: int
    p50_s: float | None
    p99_s: float | None
    resume_timeout_s: float
    basis: str  # where the ResumeTimeout comes from


def runs(power: Power, suspend_times: Sequence[float]) -> list[Run]:
    """Never sleeping (the reference), each SuspendTime as Slurm applies it (every idle
    node, no floor of awake nodes, no spare pool, Slurm's suspend rate, its fixed
    ResumeTimeout), and dormouse's configured idle policy with its learned timeouts."""
    placed_in_order = {"fifo": True, "round_robin": False, "defer": False}
    slurm_like = replace(
        power,
        sleep_idle=True,
        min_awake=0,
        spare_gpus=0,
        spare="fixed",
        min_awake_time=0.0,
        min_asleep_time=0.0,
        max_sleeps_per_min=SLURM_SUSPEND_RATE,
        never_sleep=frozenset(),
    )
    timers = [
        Run(
            f"SuspendTime={format_duration(t)}",
            SimPolicy(f"slurm-{t:g}", sleep=True, learned_timeout=False, **placed_in_order),
            replace(slurm_like, idle_after=t).policy(),
            suspend_time_s=t,
        )
        for t in suspend_times
    ]
    return [
        Run(NEVER, SimPolicy(NEVER, sleep=False, **placed_in_order), power.policy()),
        *timers,
        Run(
            DORMOUSE,
            SimPolicy(DORMOUSE, sleep=True, **placed_in_order),
            replace(power, sleep_idle=True).policy(),
        ),
    ]


def rows(summaries: Mapping[str, Summary], planned: Sequence[Run]) -> list[Row]:
    """Each run against never sleeping (`summaries` keyed by run name, NEVER among them)."""
    ref = summaries[NEVER]
    out = []
    for run in planned:
        summary = summaries[run.name]
        saved = ref.energy_kwh - summary.energy_kwh
        cost = summary.energy_cost
        out.append(
            Row(
                name=run.name,
                suspend_time_s=run.suspend_time_s,
                kwh=summary.energy_kwh,
                kwh_saved=saved,
                saved_pct=100 * saved / ref.energy_kwh if ref.energy_kwh else None,
                cost_saved=ref.energy_cost - cost
                if cost is not None and ref.energy_cost is not None
                else None,
                mean_wait_s=summary.mean_wait_s,
                wait_added_s=_minus(summary.mean_wait_s, ref.mean_wait_s),
                p95_wait_s=summary.p95_wait_s,
                wakes=summary.wakes,
            )
        )
    return out


def recommend(table: Sequence[Row], max_wait_added_s: float) -> Row | None:
    """The SuspendTime saving the most energy with a mean wait added under the bound (the
    longest timer when none is under it)."""
    timers = [r for r in table if r.suspend_time_s is not None]
    within = [r for r in timers if (r.wait_added_s or 0.0) <= max_wait_added_s]
    if within:
        return max(within, key=lambda r: r.kwh_saved)
    return max(timers, key=lambda r: r.suspend_time_s or 0.0, default=None)


def wake_times(samples: Sequence[float], assumed_s: float) -> WakeTimes:
    """ResumeTimeout: the p99 of the measured wakes x RESUME_MARGIN, rounded up to whole
    minutes, at least RESUME_FLOOR_S; from the fleet's assumed resume time when none was
    measured."""
    if not samples:
        timeout = _minutes(max(assumed_s * RESUME_MARGIN, RESUME_FLOOR_S))
        basis = f"no wakes measured: the fleet's assumed {assumed_s:g} s"
        return WakeTimes(0, None, None, timeout, basis)
    p50, p99 = quantile(samples, 0.5) or 0.0, quantile(samples, 0.99) or 0.0
    timeout = _minutes(max(p99 * RESUME_MARGIN, RESUME_FLOOR_S))
    basis = f"p99 of {len(samples)} measured wakes x {RESUME_MARGIN:g}"
    return WakeTimes(len(samples), p50, p99, timeout, basis)


def conf_lines(suspend: Row | None, wakes: WakeTimes, *, dormouse_decides: bool) -> list[str]:
    """slurm.conf lines: the programs, the timer (a week when dormouse decides: Slurm's own
    timer must not fire first, and power saving stays on for `scontrol ... POWER_DOWN`)."""
    if dormouse_decides:
        timer = 'SuspendTime=604800  # dormouse decides ([slurm] decides = "dormouse")'
    elif suspend is not None and suspend.suspend_time_s is not None:
        timer = f"SuspendTime={suspend.suspend_time_s:.0f}"
    else:
        timer = "SuspendTime=900"
    return [
        *PROGRAMS,
        timer,
        "SuspendTimeout=120",
        f"ResumeTimeout={wakes.resume_timeout_s:.0f}",
        "ReturnToService=1",
    ]


def format_duration(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def _minutes(seconds: float) -> float:
    return 60.0 * math.ceil(seconds / 60.0)


def _minus(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None
