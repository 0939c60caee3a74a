"""Bulk sample writes on PostgreSQL: COPY through a staging table against the peer, a
pipelined executemany of `INSERT ... ON CONFLICT DO NOTHING` (what the writer did before),
in the same run, on the same store.

    .venv/bin/python tests/bench/bench_bulk_writes.py [--url postgresql+psycopg://...] [--rounds 20]

Each round writes one flush of `--batch` samples (one per node, one GPU each, as the
writer's flushes look at 1 Hz) by each method into its own schema; half of each flush is
a redelivery of the round before, so the dedupe path is measured too. Prints samples/s per
method and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from coordinator.store import dialect
from coordinator.store import samples as sample_rows
from coordinator.store.engine import create_engine, upgrade
from tests import factories


def executemany(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> int:
    if not rows:
        return 0
    return int(conn.execute(dialect.upsert(conn, table).on_conflict_do_nothing(), rows).rowcount)


def store(url: str, schema: str) -> sa.Engine:
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    engine = create_engine(f"{url}?options=-csearch_path%3D{schema}")
    upgrade(engine)
    return engine


def run(engine: sa.Engine, insert: sample_rows.Insert, rounds: int, size: int) -> list[float]:
    """Samples/s of each round's flush."""
    rates = []
    for r in range(rounds):
        batches = [
            factories.telemetry(node=f"n{i}", seq_first=r * (size // 2), count=1)
            for i in range(size)
        ]
        started = time.perf_counter()
        with engine.begin() as conn:
            sample_rows.insert_batches(conn, batches, insert)
        rates.append(size / (time.perf_counter() - started))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()
    results = {}
    for name, insert in (("copy", dialect.insert_new), ("executemany", executemany)):
        engine = store(args.url, f"bench_bulk_{name}")
        run(engine, insert, 2, args.batch)  # warm: connections, temp tables, plans
        results[name] = statistics.median(run(engine, insert, args.rounds, args.batch))
        engine.dispose()
    print(f"machine: {os.cpu_count()} cores; {args.rounds} flushes of {args.batch} samples")
    for name, rate in results.items():
        print(f"{name:12s} {rate:10,.0f} samples/s (median of the flushes)")
    print(f"ratio copy/executemany: {results['copy'] / results['executemany']:.2f}x")


if __name__ == "__main__":
    main()
