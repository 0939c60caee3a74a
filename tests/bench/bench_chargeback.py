"""Chargeback at fleet size: `dormouse report --by account --since 30d` over 1,000 8-GPU
nodes and 100,000 jobs, as a command (wall, peak RSS) and in-process, against the whole
report of the same window (`dormouse report --since 30d`, the peer) in the same run.

    .venv/bin/python tests/bench/bench_chargeback.py --db postgresql
    .venv/bin/python tests/bench/bench_chargeback.py --db sqlite --nodes 200 --jobs 20000

The store: every node's hour rollups over the window and its last 2 h of minute rollups,
each a copy of a real 8-GPU row (`bench_store.templates`); jobs of 1 to 8 GPUs, 10 min to
12 h, spread over the window and the nodes, charged to 50 accounts and 400 users, with
their energy and GPU utilisation as agents report them.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT))

from coordinator.core.nodestate import NodeState  # noqa: E402
from coordinator.core.registry import NodeView  # noqa: E402
from coordinator.store import nodes as node_rows  # noqa: E402
from coordinator.store.dialect import insert_new  # noqa: E402
from coordinator.store.engine import create_engine, upgrade  # noqa: E402
from coordinator.store.models import jobs, rollup_hour, rollup_minute  # noqa: E402
from tests.bench.bench_store import PEAK, database, log, templates, vacuum  # noqa: E402

DAY, HOUR, MINUTE = 86400.0, 3600.0, 60.0


def fill(engine: sa.Engine, nodes: int, days: int, now: float, template: dict) -> list[str]:
    names = [f"n8g{i:04d}" for i in range(nodes)]
    with engine.begin() as conn:
        views = [
            NodeView(name=n, state=NodeState.ONLINE, state_since=now - days * DAY) for n in names
        ]
        node_rows.save_nodes(conn, views)
    for table, width, span in ((rollup_hour, HOUR, days * DAY), (rollup_minute, MINUTE, 2 * HOUR)):
        row = template[table.name]
        buckets = [now - width * (k + 1) for k in range(int(span // width))]
        for i in range(0, len(names), 20):
            with engine.begin() as conn:
                insert_new(
                    conn,
                    table,
                    [row | {"node": n, "bucket": b} for n in names[i : i + 20] for b in buckets],
                )
    log(f"chargeback: {nodes} nodes x {days} d of hour rows, 2 h of minute rows written")
    return names


def add_jobs(engine: sa.Engine, names: list[str], count: int, days: int, now: float) -> None:
    rng = random.Random(7)
    rows = []
    for i in range(count):
        start = now - rng.uniform(0, days * DAY)
        runtime = rng.uniform(600, 12 * HOUR)
        end = start + runtime if start + runtime < now else None
        gpus = rng.choice((1, 2, 4, 8))
        account = f"team{rng.randrange(50):02d}"
        rows.append({
            "id": f"j{i:07d}", "name": "", "argv": ["train"], "cpus": 8 * gpus,
            "mem_bytes": 0, "gpus": gpus, "labels": {}, "runtime_s": runtime, "deadline": None,
            "priority": 0, "requeue": False, "state": "succeeded" if end else "running",
            "node": rng.choice(names), "gpu_indices": list(range(gpus)), "submitted_at": start,
            "placed_at": start, "started_at": start, "finished_at": end,
            "exit_code": 0 if end else None, "energy_j": 300.0 * gpus * runtime,
            "deadline_met": None, "detail": "", "attempts": 1, "cancel_requested": False,
            "account": account, "user_name": f"{account}-u{rng.randrange(8)}",
            "gpu_util_pct": rng.uniform(0, 100) if end else None, "wasteful_at": None,
        })  # fmt: skip
    for i in range(0, len(rows), 10_000):
        with engine.begin() as conn:
            insert_new(conn, jobs, rows[i : i + 10_000])
    log(f"chargeback: {count:,} jobs over {days} d written")


def as_command(url: str, args: list[str]) -> tuple[float, float]:
    """Median wall and peak RSS (MB) of three runs of `dormouse ARGS` as a process."""
    code = PEAK + (
        "import sys\nfrom coordinator.main import main\n"
        f"sys.argv = ['dormouse', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(peak_mb(), file=sys.stderr)\n"
    )
    timings, peaks = [], []
    for _ in range(3):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", code], env=os.environ | {"DORMOUSE_DB": url}, check=True,
            capture_output=True, text=True, cwd=ROOT,
        )  # fmt: skip
        timings.append(time.perf_counter() - started)
        peaks.append(float(done.stderr.strip().splitlines()[-1]))
    return statistics.median(timings), max(peaks)


IN_PROCESS = """
import statistics, sys, time
from coordinator.cli.common import load, store
from coordinator.services import report
settings, engine, days = load(None), store(None, None), float(sys.argv[1])
def by_account():
    return report.charged(engine, settings, "account", window_s=days * 86400, now=time.time())
def whole():
    return report.build(engine, settings, window_s=days * 86400, now=time.time())
for name, run in (("--by account", by_account), ("the whole report", whole)):
    run()
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        run()
        timings.append(time.perf_counter() - started)
    print(f"{name}: median {statistics.median(timings):.3f} s")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    log(f"bench_chargeback: {args.db}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        template = templates(args.db, work)
        with database(args.db, work, "chargeback") as url:
            engine = create_engine(url)
            upgrade(engine)
            now = time.time() // HOUR * HOUR
            names = fill(engine, args.nodes, args.days, now, template)
            add_jobs(engine, names, args.jobs, args.days, now)
            engine.dispose()
            vacuum(url)
            since = f"{args.days}d"
            mine = as_command(url, ["report", "--by", "account", "--since", since, "--json"])
            peer = as_command(url, ["report", "--since", since, "--json"])
            log(
                f"chargeback: dormouse report --by account --since {since}: median "
                f"{mine[0]:.2f} s, peak RSS {mine[1]:.0f} MB (a whole command)"
            )
            log(
                f"chargeback: peer, dormouse report --since {since}: median {peer[0]:.2f} s, "
                f"peak RSS {peer[1]:.0f} MB; ratio {mine[0] / peer[0]:.2f}x wall"
            )
            inside = subprocess.run(
                [sys.executable, "-c", IN_PROCESS, str(args.days)],
                env=os.environ | {"DORMOUSE_DB": url}, check=True, capture_output=True,
                text=True, cwd=ROOT,
            ).stdout.strip()  # fmt: skip
            log(f"chargeback: in-process: {inside}")


if __name__ == "__main__":
    main()
