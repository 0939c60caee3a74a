"""A Slurm site's accounting history, generated from the public ITP traces, as `sacct
--allusers --parsable2 --format JobID,Submit,Start,End,Elapsed,NNodes,NCPUS,AllocTRES,State`
prints it (with each job's `.batch` and `.extern` steps, as sacct lists them).

    .venv/bin/python tests/bench/sacct_history.py --jobs 100000 --nodes 500 --days 30 > sacct.txt

Each job's GPUs and run time are drawn (seeded) from the jobs of the five ElasticFlow cluster
files; run times are scaled so the fleet's mean GPU use is `--busy` of its GPUs; submissions
follow a day/night curve (twice as many at 14:00 as at 02:00); a job waits 0-5 min before it
starts; jobs of more than 8 GPUs span several 8-GPU nodes.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from coordinator.sim.trace import TraceOptions, parse_trace

TRACES = Path(__file__).parents[3] / "shared" / "traces" / "elasticflow"
FILES = ("cluster01", "cluster02", "cluster03", "cluster04", "cluster05")
HEADER = "JobID|Submit|Start|End|Elapsed|NNodes|NCPUS|AllocTRES|State"
START = datetime(2026, 11, 2, tzinfo=UTC).timestamp()  # a Monday
GPUS_PER_NODE = 8


def shapes(folder: Path) -> list[tuple[int, float]]:
    """(GPUs, run time) of every job in the public traces."""
    found = []
    for name in FILES:
        with (folder / f"{name}.csv").open(newline="") as lines:
            found += [(j.gpus, j.runtime_s) for j in parse_trace(lines, TraceOptions(), name)]
    return found


def submit_times(rng: random.Random, count: int, days: float) -> list[float]:
    """Seconds from START, denser by day: rate 1 + 0.5 x sin, peaking at 14:00."""
    times: list[float] = []
    span = days * 86400
    while len(times) < count:
        t = rng.uniform(0, span)
        weight = 1 + 0.5 * math.sin(2 * math.pi * ((t % 86400) / 86400 - 8 / 24))
        if rng.uniform(0, 1.5) <= weight:
            times.append(t)
    return sorted(times)


def elapsed(seconds: float) -> str:
    s = int(seconds)
    days, rest = divmod(s, 86400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}-{text}" if days else text


def lines(jobs: int, nodes: int, days: float, busy: float, seed: int) -> Iterator[str]:
    rng = random.Random(seed)
    pool = shapes(TRACES)
    drawn = [rng.choice(pool) for _ in range(jobs)]
    wanted = busy * nodes * GPUS_PER_NODE * days * 86400
    scale = wanted / sum(max(g, 1) * r for g, r in drawn)
    yield HEADER
    for index, (submit, (gpus, runtime)) in enumerate(
        zip(submit_times(rng, jobs, days), drawn, strict=True)
    ):
        start = submit + rng.uniform(0, 300)
        run = max(60.0, runtime * scale)
        end = start + run
        on = max(1, math.ceil(gpus / GPUS_PER_NODE))
        cpus = max(4, 4 * gpus)
        tres = f"billing={cpus},cpu={cpus},gres/gpu={gpus},mem={16 * max(gpus, 1)}G,node={on}"
        when = [_iso(START + t) for t in (submit, start, end)]
        job = str(1000 + index)
        yield f"{job}|{when[0]}|{when[1]}|{when[2]}|{elapsed(run)}|{on}|{cpus}|{tres}|COMPLETED"
        for step in ("batch", "extern"):
            yield (
                f"{job}.{step}|{when[1]}|{when[1]}|{when[2]}|{elapsed(run)}|{on}|{cpus}|"
                f"cpu={cpus},mem={16 * max(gpus, 1)}G,node={on}|COMPLETED"
            )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--busy", type=float, default=0.35, help="mean share of GPUs in use")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    out = sys.stdout
    for line in lines(args.jobs, args.nodes, args.days, args.busy, args.seed):
        out.write(line + "\n")


if __name__ == "__main__":
    main()
