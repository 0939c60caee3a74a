"""The hold bound with the fleet's size in it: what no start-time policy on this fleet beats.

`metrics.hold_bound` gives every job room at its cheapest start; on 8-14 nodes, where one
job may take more than half the fleet, most of that room does not exist (two 64-GPU jobs
cannot both run through the same night on 112 GPUs). This bound keeps the fleet's GPUs:
each job's GPU-seconds are spread over the hours of its window [submit, deadline] (at most
its own GPUs at a time), every hour holds at most the fleet's GPUs, and the least cost of
that linear programme (HiGHS, through scipy) is a floor on any schedule that meets the
deadlines on this fleet, as a job's work may be split across hours as no real run can (and
the part-hours at either end of jobs' windows share their hour's room, a looser floor).
Splitting can also beat a job's cheapest whole start (a 14-hour job over two nights), so the
floor is the larger of the two: this one and the job-by-job best of `hold_bound`.

A fleet that cannot meet every deadline (cluster05's 8 nodes miss 12 % of them without any
hold) has no such schedule; `due` then gives each job the later of its deadline and its end
in the run without holds, which ran every job on the same fleet, so a schedule exists.

Bench-only (scipy is a dev dependency): the simulator reports the bound without the fleet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import csr_array

from coordinator.power.tariff import Rate
from coordinator.sim.engine import JobRun
from coordinator.sim.fleet import NodeType
from coordinator.sim.metrics import HoldBound, hold_bound
from coordinator.sim.trace import TraceJob
from shared.units import J_PER_KWH

HOUR_S = 3600.0


def due(jobs: Sequence[TraceJob], runs: Sequence[JobRun]) -> list[TraceJob]:
    """The jobs, each due by its deadline or by its end in `runs`, whichever is later."""
    ends = {run.trace.id: run.end_s for run in runs}
    return [
        replace(job, deadline_s=max(job.deadline_s, ends.get(job.id) or job.deadline_s))
        if job.deadline_s is not None
        else job
        for job in jobs
    ]


def fleet_hold_bound(
    jobs: Sequence[TraceJob], rate: Rate, kind: NodeType, gpus: int, scale: float = 1.0
) -> HoldBound:
    """`hold_bound`, with `best` raised to what `gpus` GPUs allow (same units). Jobs without
    GPUs or a deadline keep their own bound (they take no GPU hours here: a relaxation).
    ValueError when no schedule meets every deadline (see `due`)."""
    free = hold_bound(jobs, rate, kind, scale)
    moved: list[TraceJob] = []
    others: list[TraceJob] = []
    for job in jobs:
        fits = job.gpus and job.runtime_s > 0 and job.deadline_s is not None
        (moved if fits else others).append(job)
    if not moved or not kind.gpus:
        return free
    watts = kind.busy_w / kind.gpus  # per GPU, as `hold_bound` weighs a job
    floor = _least_cost(moved, rate, gpus) * watts * scale / J_PER_KWH
    rest = hold_bound(others, rate, kind, scale)
    return HoldBound(free.at_once, max(free.best, floor + rest.best))


def _least_cost(jobs: Sequence[TraceJob], rate: Rate, gpus: int) -> float:
    """The least rate x GPU-seconds that runs every job's GPU-seconds within its window,
    at most its GPUs at a time and the fleet's GPUs in any hour."""
    rows, cols, ubs, starts, ends = [], [], [], [], []
    first = math.floor(min(j.submit_s for j in jobs) / HOUR_S)
    for row, job in enumerate(jobs):
        deadline = max(job.deadline_s or 0.0, job.submit_s + job.runtime_s)
        for hour in range(math.floor(job.submit_s / HOUR_S), math.ceil(deadline / HOUR_S)):
            t0, t1 = max(hour * HOUR_S, job.submit_s), min((hour + 1) * HOUR_S, deadline)
            if t1 > t0:
                rows.append(row)
                cols.append(hour - first)
                ubs.append(job.gpus * (t1 - t0))
                starts.append(t0)
                ends.append(t1)
    n = len(rows)
    price = rate.mean_each(np.array(starts), np.array(ends))
    var = np.arange(n)
    work = csr_array((np.ones(n), (np.array(rows), var)), shape=(len(jobs), n))
    hours = max(cols) + 1
    room = csr_array((np.ones(n), (np.array(cols), var)), shape=(hours, n))
    result = linprog(
        price,
        A_ub=room,
        b_ub=np.full(hours, gpus * HOUR_S),
        A_eq=work,
        b_eq=np.array([j.gpus * j.runtime_s for j in jobs], dtype=np.float64),
        bounds=np.column_stack([np.zeros(n), np.array(ubs)]),
        method="highs",
    )
    if result.status != 0:
        raise ValueError(f"no schedule meets every deadline on {gpus} GPUs: {result.message}")
    return float(result.fun)
