"""The simulator's decisions on every public trace, dumped for a before/after comparison.

    .venv/bin/python tests/bench/sim_reports.py dump before.json    # on the old commit
    .venv/bin/python tests/bench/sim_reports.py dump after.json     # on the new one
    .venv/bin/python tests/bench/sim_reports.py compare before.json after.json

A refactor of placement or power that claims "the same decisions" (issue 15: the kept
cluster state) must leave every run identical: for each cluster file of the bench fleet
size (and cluster02 also on 22, 352 and 2,000 nodes) and each policy, the report (energy,
deadline hits, lower bound, sleeps, wakes...), every job's start and end, and every node's
energy. `compare` prints one line per run and exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from coordinator.settings import Power
from coordinator.sim.engine import POLICIES, Simulation
from coordinator.sim.fleet import default_type
from coordinator.sim.metrics import summarise
from tests.bench.bench_simulator import FILES, GPUS, TRACES, fleet_size, traces

EXTRA_SIZES = {"cluster02": [22, 352, 2000]}
COMPARED = ("summary", "runs", "counts", "energy")


def dump(out: Path) -> None:
    found: dict[str, dict[str, Any]] = {}
    for name, jobs in traces(TRACES, FILES):
        for nodes in [fleet_size(jobs), *EXTRA_SIZES.get(name, [])]:
            for policy in POLICIES:
                started = time.perf_counter()
                sim = Simulation(
                    jobs, [default_type(nodes, GPUS)], POLICIES[policy], Power().policy()
                )
                outcome = sim.run()
                seconds = time.perf_counter() - started
                key = f"{name}/{nodes}/{policy}"
                found[key] = {
                    "summary": dataclasses.asdict(summarise(outcome)),
                    "runs": [(r.start_s, r.end_s) for r in outcome.jobs],
                    "counts": [outcome.sleeps, outcome.wakes, outcome.failures],
                    "energy": [round(n.energy_j, 3) for n in outcome.nodes],
                    "jobs_per_min": len(jobs) / seconds * 60,
                }
                print(f"{key}: {found[key]['jobs_per_min']:,.0f} jobs/min", flush=True)
    out.write_text(json.dumps(found, default=str))


def compare(before_file: Path, after_file: Path) -> int:
    before, after = json.loads(before_file.read_text()), json.loads(after_file.read_text())
    differ = 0
    for key in sorted(before.keys() & after.keys()):
        fields = [f for f in COMPARED if before[key][f] != after[key][f]]
        speed = f"{before[key]['jobs_per_min']:,.0f} -> {after[key]['jobs_per_min']:,.0f} jobs/min"
        print(f"{key:<32} {'DIFFERENT ' + ','.join(fields) if fields else 'same':<12} {speed}")
        differ += bool(fields)
    missing = before.keys() ^ after.keys()
    if missing:
        print(f"runs in one file only: {', '.join(sorted(missing))}")
    return 1 if differ or missing else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("dump").add_argument("out", type=Path)
    both = sub.add_parser("compare")
    both.add_argument("before", type=Path)
    both.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "dump":
        dump(args.out)
    else:
        sys.exit(compare(args.before, args.after))


if __name__ == "__main__":
    main()
