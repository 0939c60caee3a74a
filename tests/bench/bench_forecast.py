"""Issue 17, item 2: the forecast spare pool against the fixed one, on every public trace.

    .venv/bin/python tests/bench/bench_forecast.py
    .venv/bin/python tests/bench/bench_forecast.py --files cluster02 --spare-max 8,16,32

Per ITP cluster file: issue 17's heterogeneous fleet (`bench_tariff.fleet`: half the nodes
resume in 1 min, half in 8 min, 1 % of wakes fail), deadline 3 x runtime, the coordinator's
default [power] knobs, and dormouse run twice over the same trace: the peer `spare =
"fixed"` (spare_gpus 0, the default) and `spare = "forecast"` (GPUs submitted per hour at
this hour of the week x the learned p95 wake time, 0 to spare_max_gpus). Printed: energy,
deadline hits and mean wait of each, and the differences. The issue's rule: the default
stays fixed until the forecast wins on every public trace.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path

from coordinator.settings import Power
from coordinator.sim.engine import POLICIES, Simulation
from coordinator.sim.fleet import NodeType
from coordinator.sim.metrics import Summary, summarise
from coordinator.sim.trace import TraceJob
from tests.bench.bench_simulator import FILES, TRACES, traces
from tests.bench.bench_tariff import fleet


def run(jobs: list[TraceJob], kinds: list[NodeType], power: Power) -> Summary:
    outcome = Simulation(jobs, kinds, POLICIES["dormouse"], power.policy()).run()
    return summarise(outcome)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=Path, default=TRACES)
    parser.add_argument("--files", default=FILES)
    parser.add_argument("--spare-max", default="16", help="spare_max_gpus values to try")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}; fleet: half 1 min, half 8 min to resume; deadline 3 x")
    print(
        f"{'trace':<10} {'max':>4} {'fixed kWh':>10} {'fcst kWh':>10} {'energy':>7} "
        f"{'hits':>7} {'fcst':>7} {'d pts':>6} {'wait s':>8} {'fcst':>8}"
    )
    for name, jobs in traces(args.traces, args.files):
        kinds = fleet(jobs)
        fixed = run(jobs, kinds, Power())
        for most in (int(m) for m in args.spare_max.split(",")):
            ours = run(jobs, kinds, replace(Power(), spare="forecast", spare_max_gpus=most))
            hits, fixed_hits = ours.deadline_hits_pct or 0.0, fixed.deadline_hits_pct or 0.0
            energy = 100 * (ours.energy_kwh / fixed.energy_kwh - 1)
            print(
                f"{name:<10} {most:>4} {fixed.energy_kwh:>10,.0f} {ours.energy_kwh:>10,.0f} "
                f"{energy:>+6.1f}% {fixed_hits:>6.2f}% {hits:>6.2f}% {hits - fixed_hits:>+6.2f} "
                f"{fixed.mean_wait_s:>8,.0f} {ours.mean_wait_s:>8,.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
