"""Command start-up (the rough-edges issue's benchmark): p50 wall of 10 runs of each
command as a user types it, as a multiple of `python3 -c pass` run the same way in the same
run (the interpreter dormouse runs under: the same start-up, nothing imported).

    .venv/bin/python tests/bench/bench_cli.py [--nodes 1000] [--runs 10]

The store is a SQLite file in a temporary directory: `--nodes` nodes (each with a hello,
as `dormouse nodes` lists them) and one node's 24 hours at 10 s, rolled up, for
`dormouse history --node n0000 --metric cpu_util_pct --since 24h --step 1m`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from coordinator.core.nodestate import NodeState
from coordinator.core.registry import NodeView
from coordinator.store import nodes as node_rows
from coordinator.store import rollups as rollup_rows
from coordinator.store import samples as sample_rows
from coordinator.store.engine import create_engine, upgrade
from shared.messages import Sample, TelemetryBatch
from tests import factories

DAY = 86_400.0
TARGETS = {  # the bounds, as multiples of the peer
    "dormouse --version": 5,
    "dormouse --help": 20,
    "dormouse status": 20,
    "dormouse nodes": 30,
    "dormouse history": 25,
}


def build(url: str, nodes: int, now: float) -> None:
    engine = create_engine(url)
    upgrade(engine)
    start = now - now % 60 - DAY
    views = [
        NodeView(
            name=f"n{i:04d}",
            state=NodeState.ONLINE,
            state_since=start,
            hello=dataclasses.replace(factories.hello(f"n{i:04d}"), labels={"rack": f"r{i % 40}"}),
        )
        for i in range(nodes)
    ]
    batches = [
        TelemetryBatch(
            node="n0000",
            seq_first=k * 60,
            samples=tuple(
                Sample(ts=start + (k * 60 + j) * 10, metrics={"cpu_util_pct": 20.0 + j % 7})
                for j in range(60)
            ),
        )
        for k in range(int(DAY // 600))
    ]
    with engine.begin() as conn:
        node_rows.save_nodes(conn, views)
        sample_rows.insert_batches(conn, batches)
        while rollup_rows.roll_up(conn, now, max_gap_s=30.0):
            pass
    engine.dispose()


def p50(argv: list[str], env: dict[str, str], runs: int) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=True, timeout=60)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    dormouse = str(Path(sys.executable).with_name("dormouse"))
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{scratch}/store.db"
        build(url, args.nodes, time.time())
        env = os.environ | {"DORMOUSE_DB": url}
        history = ["history", "--node", "n0000", "--metric", "cpu_util_pct", "--since", "24h"]
        cases = {
            "python3 -c pass": [sys.executable, "-c", "pass"],
            "dormouse --version": [dormouse, "--version"],
            "dormouse --help": [dormouse, "--help"],
            "dormouse status": [dormouse, "status"],
            "dormouse nodes": [dormouse, "nodes"],
            "dormouse history": [dormouse, *history, "--step", "1m"],
        }
        print(f"bench_cli: {os.cpu_count()} cores, {args.nodes} nodes, p50 of {args.runs} runs")
        peer = p50(cases.pop("python3 -c pass"), env, args.runs)
        print(f"python3 -c pass: {peer * 1000:.0f} ms (the peer)")
        for name, argv in cases.items():
            took = p50(argv, env, args.runs)
            print(
                f"{name}: {took * 1000:.0f} ms, {took / peer:.1f}x the peer "
                f"(target <= {TARGETS[name]}x)"
            )


if __name__ == "__main__":
    main()
