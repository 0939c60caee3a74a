"""The simulator on the public ITP traces (issue 7's benchmark), in process.

    .venv/bin/python tests/bench/bench_simulator.py
    .venv/bin/python tests/bench/bench_simulator.py --files cluster01,cluster05
    .venv/bin/python tests/bench/bench_simulator.py --files cluster02 --nodes 22,44,352,2000

Per cluster file: a fleet of 8-GPU nodes sized to it (4 x the trace's mean busy GPUs,
rounded up to whole nodes, at least 8), `--deadline-factor 3`, the coordinator's default
[power] knobs, and two runs over the same trace: `dormouse` and the peer `always-on` (EDF,
never sleeps). Printed: energy saved, deadline hits (and the difference in points), energy
over the lower bound, and simulation speed in jobs per minute (the fastest of `--repeat`
dormouse runs, 3 by default: the machines are noisy, the simulation deterministic).
Goals: saved >= 30 % with deadline hits no worse than always-on by more than 1 point;
within 1.3 x the lower bound; >= 100,000 jobs per minute.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

from coordinator.settings import Power
from coordinator.sim.engine import POLICIES, Simulation
from coordinator.sim.fleet import default_type
from coordinator.sim.metrics import Summary, summarise
from coordinator.sim.trace import TraceJob, TraceOptions, parse_trace

TRACES = Path(__file__).parents[3] / "shared" / "traces" / "elasticflow"
FILES = "cluster01,cluster02,cluster03,cluster04,cluster05"
GPUS = 8


def fleet_size(jobs: list[TraceJob]) -> int:
    span = max(j.submit_s + j.runtime_s for j in jobs) - jobs[0].submit_s
    mean_busy = sum(j.gpus * j.runtime_s for j in jobs) / span
    return max(8, math.ceil(4 * mean_busy / GPUS))


def traces(folder: Path, files: str) -> Iterator[tuple[str, list[TraceJob]]]:
    """Each named cluster file's jobs, deadline 3 x runtime (a missing file is said)."""
    for name in files.split(","):
        path = folder / f"{name}.csv"
        if not path.exists():
            print(f"{name}: {path} not found, skipped")
            continue
        with path.open(newline="") as lines:
            yield name, parse_trace(lines, TraceOptions(deadline_factor=3.0), name)


def run(jobs: list[TraceJob], nodes: int, name: str) -> tuple[Summary, float, float]:
    started = time.perf_counter()
    outcome = Simulation(jobs, [default_type(nodes, GPUS)], POLICIES[name], Power().policy()).run()
    return summarise(outcome), time.perf_counter() - started, outcome.end


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traces", type=Path, default=TRACES)
    parser.add_argument("--files", default=FILES)
    parser.add_argument(
        "--nodes", default="", help="fleet sizes to replay each file on (default: sized to it)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="dormouse runs timed per line; the fastest counts"
    )
    args = parser.parse_args()
    sizes = [int(n) for n in args.nodes.split(",") if n]
    print(f"cores: {os.cpu_count()}; fleet: 8-GPU nodes, 4 x mean busy GPUs; deadline 3 x runtime")
    print(
        f"{'trace':<10} {'jobs':>6} {'nodes':>5} {'saved':>7} {'hits':>7} {'peer':>7} "
        f"{'d pts':>6} {'vs LB':>6} {'peer LB':>7} {'jobs/min':>9}"
    )
    for name, jobs in traces(args.traces, args.files):
        for nodes in sizes or [fleet_size(jobs)]:
            row(name, jobs, nodes, args.repeat)


def row(name: str, jobs: list[TraceJob], nodes: int, repeat: int) -> None:
    """One trace on one fleet size: dormouse and the always-on peer, one line. The
    simulation is deterministic, so its repeats only time it: the fastest is least
    disturbed by the machine's noise (as `timeit` takes the minimum)."""
    runs = [run(jobs, nodes, "dormouse") for _ in range(max(1, repeat))]
    ours, _, end_ours = runs[0]
    seconds = min(r[1] for r in runs)
    peer, _, end_peer = run(jobs, nodes, "always-on")
    saved = 100 * (1 - ours.energy_kwh / peer.energy_kwh)
    hits, peer_hits = ours.deadline_hits_pct or 0.0, peer.deadline_hits_pct or 0.0
    columns = [
        f"{name:<10} {len(jobs):>6} {nodes:>5} {saved:>6.1f}%",
        f"{hits:>6.2f}% {peer_hits:>6.2f}% {hits - peer_hits:>+6.2f}",
        f"{ours.energy_kwh / ours.lower_bound_kwh:>6.3f}",
        f"{peer.energy_kwh / peer.lower_bound_kwh:>7.3f}",
        f"{len(jobs) / seconds * 60:>9,.0f}",
    ]
    if abs(end_ours - end_peer) >= 3600:
        columns.append(f"(ends differ by {(end_ours - end_peer) / 3600:.1f} h)")
    print(" ".join(columns))


if __name__ == "__main__":
    main()
