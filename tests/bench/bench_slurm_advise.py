"""`dormouse slurm advise` on a Slurm site's 30 days: 100,000 jobs over 500 8-GPU nodes
(generated from the public ITP traces by sacct_history.py), as a process, the way an
operator runs it; then `dormouse simulate` of the same history, whose saving the advice's
`dormouse` row is checked against.

    .venv/bin/python tests/bench/bench_slurm_advise.py
    .venv/bin/python tests/bench/bench_slurm_advise.py --jobs 20000 --nodes 100

Printed: the advice's wall time and peak memory (goal: <= 60 s), its table (kWh saved and
wait added per policy), and the saving `dormouse simulate --policy dormouse` finds against
`always-on` for the same trace and fleet, beside the advice's `dormouse` row. The two differ
by design in one way: `simulate` places by deadline and may hold jobs for a cheaper
window, the advice places in submit order (Slurm places) and holds nothing; with a flat
price and no deadlines both place in submit order and hold nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2]))
from tests.bench.sacct_history import lines

DORMOUSE = [sys.executable, "-m", "coordinator"]


def run(argv: list[str], env: dict[str, str]) -> tuple[dict, float]:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: {done.stderr}")
    return json.loads(done.stdout), took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--days", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        history = Path(scratch) / "sacct.txt"
        history.write_text("\n".join(lines(args.jobs, args.nodes, args.days, 0.35, 7)) + "\n")
        env = {**os.environ, "DORMOUSE_DB": f"sqlite:///{scratch}/dormouse.db"}
        subprocess.run([*DORMOUSE, "db", "upgrade"], env=env, capture_output=True, check=True)
        fleet = ["--nodes", str(args.nodes), "--gpus-per-node", "8"]
        advised, took = run(
            [*DORMOUSE, "slurm", "advise", "--sacct", str(history), *fleet, "--json"], env
        )
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        simulated, sim_took = run(
            [*DORMOUSE, "simulate", "--trace", str(history), *fleet, "--policy", "dormouse",
             "--json"],
            env,
        )  # fmt: skip
    print(
        f"{advised['jobs']:,} jobs over {advised['span_days']:.1f} days, {advised['nodes']} "
        f"nodes, {os.cpu_count()} cores"
    )
    print(f"dormouse slurm advise: {took:.1f} s wall (goal <= 60 s), peak {peak_mib:.0f} MiB")
    print(f"{'policy':<18}{'kWh':>10}{'saved kWh':>11}{'saved':>8}{'wait added':>12}{'wakes':>8}")
    for row in advised["policies"]:
        print(
            f"{row['name']:<18}{row['kwh']:>10,.0f}{row['kwh_saved']:>11,.0f}"
            f"{row['saved_pct']:>7.1f}%{row['wait_added_s']:>11.1f}s{row['wakes']:>8,}"
        )
    print(f"recommended: {advised['recommended']}; ResumeTimeout {advised['resume_timeout_s']:.0f}")
    ours = next(r for r in advised["policies"] if r["name"] == "dormouse")
    checked = simulated["policies"]["dormouse"]["saved_vs_always_on_pct"]
    print(
        f"check: advise's dormouse saves {ours['saved_pct']:.2f} %, dormouse simulate "
        f"({sim_took:.1f} s) {checked:.2f} % against always-on: "
        f"{ours['saved_pct'] - checked:+.2f} points"
    )


if __name__ == "__main__":
    main()
