"""Issue 17's benchmark: a 2:1 day/night tariff, deadline factor 3, a heterogeneous fleet.

    .venv/bin/python tests/bench/bench_tariff.py
    .venv/bin/python tests/bench/bench_tariff.py --files cluster01,cluster05
    .venv/bin/python tests/bench/bench_tariff.py --by carbon
    .venv/bin/python tests/bench/bench_tariff.py --knobs keep_slack=0.1,fill=0.75
    .venv/bin/python tests/bench/bench_tariff.py --files cluster04 --copies 5   (1,228 nodes)

Per ITP cluster file: 8-GPU nodes sized to the trace (4 x its mean busy GPUs, at least 8),
half resuming in 1 min +- 20 s and half in 8 min +- 2 min, 1 % of wakes failing;
`day_night_2to1.csv` (08:00-20:00 at 0.20, the night at 0.10; trace time 0 is a Monday
00:00); the coordinator's default [power] and [cost] knobs. Three runs over the same trace:
`dormouse` (learned wake times, holds for the cheap window), the peer `dormouse-flat`
(today's fixed policy: the fixed resume timeout, no holds), `always-on`, and `no hold`
(dormouse with holds off: what the learned wake times alone change).
Goals: energy cost >= 10 % below dormouse-flat and >= 40 % below always-on; deadline hits no
worse than dormouse-flat's by more than 0.5 point; no node wrongly failed.

Columns: `vs flat` and `vs on`, dormouse's cost below each peer's; `learn`, the no-hold run's
cost below dormouse-flat's (the learned wake times' share of `vs flat`); `holds`, dormouse's
cost below the no-hold run's (the holds' share); `bound`, the most any start-time policy
could take off the jobs' own energy cost (`metrics.hold_bound_pct`: each job at its cheapest
start before its deadline, room for all). `capt`, the holds' cut in money (the no-hold run's
cost less dormouse's) as a share of the bound's room in money (`metrics.HoldBound`: the jobs'
own energy priced at once less at best); `pct/pct`, the older ratio of `holds` to `bound`
(percentages of different bases: the fleet's whole energy against the jobs' own); `kWh+`,
dormouse's energy over the no-hold run's (what the holds cost in kilowatt-hours); `gpu-h
hits`, deadline hits weighed by GPU-hours, dormouse's and the no-hold run's; `job hits no
hold`, the no-hold run's hits by job count (dormouse's are `hits`). `s` and `s no hold`:
seconds each run's simulation took, with holds and without (the peer for what holds cost
the scheduler). `fleet` and its `capt`:
the bound with the fleet's GPUs in it (`fleet_bound.py`: no hour holds more than the fleet,
and no job is due later than its deadline or its end in the no-hold run), and the holds'
cut as a share of its room.

`--by carbon`: the same four runs holding for low gCO2 (`defer_by = "carbon"`) on a sunny-noon
carbon curve (`carbon_sunny_noon.csv`: 100-170 g around noon, 430-490 g at night and in the
evening: not the price curve), energy still priced at the tariff; the table is in kg CO2
and the bound is the carbon bound.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from coordinator.power.defer import DeferPolicy
from coordinator.power.tariff import CARBON, Rate, parse_rate
from coordinator.settings import Cost, Power
from coordinator.sim.engine import POLICIES, Outcome, Simulation
from coordinator.sim.fleet import NodeType, default_type
from coordinator.sim.metrics import Summary, hold_bound, summarise
from coordinator.sim.trace import TraceJob
from tests.bench.bench_simulator import FILES, GPUS, TRACES, fleet_size, traces
from tests.bench.fleet_bound import due, fleet_hold_bound

HERE = Path(__file__).parent
RUNS = ("dormouse", "dormouse-flat", "always-on", "no hold")


def fleet(jobs: list[TraceJob]) -> list[NodeType]:
    nodes = fleet_size(jobs)
    base = replace(default_type(1, GPUS), wake_failure=0.01)
    fast = replace(base, name="fast", count=nodes - nodes // 2, resume_latency_s=60.0,
                   resume_jitter_s=20.0)  # fmt: skip
    slow = replace(base, name="slow", count=nodes // 2, resume_latency_s=480.0,
                   resume_jitter_s=120.0)  # fmt: skip
    return [fast, slow]


def tariff() -> Rate:
    with (HERE / "day_night_2to1.csv").open() as lines:
        return parse_rate(lines, "day_night_2to1.csv")


def carbon() -> Rate:
    with (HERE / "carbon_sunny_noon.csv").open() as lines:
        return parse_rate(lines, "carbon_sunny_noon.csv", CARBON)


def run(
    jobs: list[TraceJob], kinds: list[NodeType], name: str, defer: DeferPolicy
) -> tuple[Outcome, float]:
    policy = replace(POLICIES["dormouse"], defer=False) if name == "no hold" else POLICIES[name]
    started = time.perf_counter()
    simulation = Simulation(
        jobs,
        kinds,
        policy,
        Power().policy(),
        tariff=tariff(),
        carbon=carbon() if defer.by == "carbon" else None,
        defer=defer,
    )
    outcome = simulation.run()
    return outcome, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traces", type=Path, default=TRACES)
    parser.add_argument("--files", default=FILES)
    parser.add_argument("--by", choices=["price", "carbon"], default="price")
    parser.add_argument(
        "--copies",
        type=int,
        default=1,
        help="each trace this many times over, on as many times the nodes",
    )
    parser.add_argument(
        "--knobs", default="", help="DeferPolicy fields: keep_slack=0.1,fill=0.75,min_saving=0.02"
    )
    args = parser.parse_args()
    knobs: dict[str, Any] = {
        k: float(v) for k, v in (kv.split("=") for kv in args.knobs.split(",") if kv)
    }
    defer = replace(Cost().defer_policy(), by=args.by, **knobs)
    print(f"cores: {os.cpu_count()}; 2:1 tariff, deadline 3 x runtime, half the nodes 1 min, "
          f"half 8 min to resume; holds by {args.by}; {defer}")  # fmt: skip
    what = "kg CO2" if args.by == "carbon" else "cost"
    print(
        f"{'trace':<10} {'nodes':>5} {what:>9} {'flat':>9} {'vs flat':>8} {'vs on':>7} "
        f"{'learn':>6} {'holds':>6} {'bound':>6} {'hits':>7} {'flat':>7} {'d pts':>6} "
        f"{'held':>6} {'wrong':>5} {'flat wrong':>10} {'s':>6} {'s no hold':>9} {'capt':>5} "
        f"{'pct/pct':>7} "
        f"{'kWh+':>6} {'gpu-h hits':>10} {'no hold':>7} {'job hits no hold':>16} {'fleet':>6} "
        f"{'capt':>6}"
    )
    for name, one in traces(args.traces, args.files):
        jobs = copies(one, args.copies)
        kinds = fleet(jobs)
        results = {policy: run(jobs, kinds, policy, defer) for policy in RUNS}
        end = max(outcome.end for outcome, _ in results.values())  # energy to a common end
        ours, flat, on, learned = (summarise(results[p][0], end) for p in RUNS)
        hits, flat_hits = ours.deadline_hits_pct or 0.0, flat.deadline_hits_pct or 0.0
        rate, scale = (carbon(), 1e-3) if args.by == "carbon" else (tariff(), 1.0)
        bound = hold_bound(jobs, rate, kinds[0], scale)
        gpus = sum(k.count * k.gpus for k in kinds)
        room = fleet_hold_bound(due(jobs, results["no hold"][0].jobs), rate, kinds[0], gpus, scale)
        value = {"price": figure_cost, "carbon": figure_co2}[args.by]
        ratio = 100 * pct(ours, learned, value) / bound.pct if bound.pct else 0.0
        captured = bound.captured_pct(value(ours), value(learned)) or 0.0
        in_fleet = room.captured_pct(value(ours), value(learned)) or 0.0
        print(
            f"{name:<10} {sum(k.count for k in kinds):>5} {value(ours):>9,.0f} "
            f"{value(flat):>9,.0f} {pct(ours, flat, value):>7.1f}% "
            f"{pct(ours, on, value):>6.1f}% {pct(learned, flat, value):>5.1f}% "
            f"{pct(ours, learned, value):>5.1f}% {bound.pct:>5.1f}% "
            f"{hits:>6.2f}% {flat_hits:>6.2f}% {hits - flat_hits:>+6.2f} {ours.held:>6} "
            f"{ours.wrongly_failed:>5} {flat.wrongly_failed:>10} {results['dormouse'][1]:>6.1f} "
            f"{results['no hold'][1]:>9.1f} "
            f"{captured:>4.0f}% {ratio:>6.0f}% "
            f"{100 * (ours.energy_kwh / learned.energy_kwh - 1):>+5.2f}% "
            f"{ours.deadline_hits_gpu_h_pct or 0.0:>9.2f}% "
            f"{learned.deadline_hits_gpu_h_pct or 0.0:>6.2f}% "
            f"{learned.deadline_hits_pct or 0.0:>15.2f}% {room.pct:>5.1f}% {in_fleet:>5.0f}%",
            flush=True,
        )


def copies(jobs: list[TraceJob], count: int) -> list[TraceJob]:
    """The trace `count` times over, copy k a minute later than copy k - 1 (the fleet at the
    size users run, with the trace's own shape; `fleet` sizes the nodes to it)."""
    if count <= 1:
        return jobs
    out = [
        replace(job, id=f"{job.id}~{k}", submit_s=job.submit_s + 60.0 * k,
                deadline_s=None if job.deadline_s is None else job.deadline_s + 60.0 * k)
        for k in range(count)
        for job in jobs
    ]  # fmt: skip
    return sorted(out, key=lambda job: job.submit_s)


def figure_cost(summary: Summary) -> float:
    return summary.energy_cost or 0.0


def figure_co2(summary: Summary) -> float:
    return summary.co2_kg or 0.0


def pct(ours: Summary, peer: Summary, value: Callable[[Summary], float] = figure_cost) -> float:
    """How much lower our figure (energy cost, or CO2) is, in percent of the peer's."""
    return 100 * (1 - value(ours) / (value(peer) or 1.0))


if __name__ == "__main__":
    main()
