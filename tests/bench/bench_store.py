"""The fleet store (issue 31's benchmark): bytes per value by tier, ingest and rollup rates,
retention passes, and fleet-scale queries, against the previous schema in the same run.

    .venv/bin/python tests/bench/bench_store.py --db postgresql
    .venv/bin/python tests/bench/bench_store.py --db sqlite
    .venv/bin/python tests/bench/bench_store.py --db postgresql --part queries --nodes 1000

Parts (all by default):
* size: `--size-nodes` nodes x `--size-minutes` of realistic telemetry at 1 s, in batches of
  5 (the agent's default), written by both stores' own code; bytes on disk per tier, per
  stored value (raw), per node-minute and per node-hour; the projection for 1,000 x 8-GPU
  nodes at 1 s with default retention (raw 7 d, minute 90 d, hour 2 y).
* rates: `--rate-nodes` nodes x 3 minutes: ingest (node-samples/s, one writer, transactions
  of 200 batches) and the leader's minute rollup (node-minutes/s, and how many nodes one core
  keeps current at 1 node-minute per node per minute).
* retention: the size part's chunks copied over 7 days (>= 100 M values), partitioned by
  day on PostgreSQL; a pass with nothing to expire (p50 of 20), then a day expired.
* queries: `--nodes` nodes x 7 days of hour rollups and 2 h of minute rollups (one node:
  30 d of hours, 24 h of minutes), built from the size part's rows: `history` p50s, `--by
  fleet` over 7 d at 1 h, and `dormouse report --since 7d` run as a command (wall, RSS).
The peer ("old") is the store as of d777e69 (a row per sample and per GPU, a row per node,
GPU and metric per minute and hour), its modules read from git into a scratch package.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT))

from coordinator.core.series import FleetQuery, SeriesQuery  # noqa: E402
from coordinator.settings import Retention  # noqa: E402
from coordinator.store import retention  # noqa: E402
from coordinator.store import rollups as rollup_rows  # noqa: E402
from coordinator.store import samples as sample_rows  # noqa: E402
from coordinator.store import series as series_rows  # noqa: E402
from coordinator.store.engine import create_engine, upgrade  # noqa: E402
from coordinator.store.models import raw_chunks, rollup_hour, rollup_minute  # noqa: E402
from shared.messages import TelemetryBatch  # noqa: E402
from shared.metrics import BY_NAME  # noqa: E402
from tests.bench.fleet_data import Node as Stream  # noqa: E402
from tests.bench.fleet_data import values_per_sample  # noqa: E402

PG = os.environ.get("DORMOUSE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PEER_COMMIT = "d777e69"
T0 = 1_764_547_200.0  # a UTC midnight
DAY, HOUR, MINUTE = 86400.0, 3600.0, 60.0
KEEP = Retention()
COPIES = 7  # days of the retention part's store, each a copy of the size part's chunks


def log(text: str) -> None:
    print(text, flush=True)


# --- stores -----------------------------------------------------------------------------


def peer_modules(work: Path) -> tuple[ModuleType, ModuleType, ModuleType]:
    """models, samples, rollups of the store at PEER_COMMIT, importable as `oldstore.*`."""
    package = work / "oldstore"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    for name in ("models", "rollups", "samples"):
        text = subprocess.run(
            ["git", "show", f"{PEER_COMMIT}:coordinator/store/{name}.py"],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        for module in ("models", "rollups", "samples"):
            text = text.replace(f"coordinator.store.{module}", f"oldstore.{module}")
        (package / f"{name}.py").write_text(text)
    sys.path.insert(0, str(work))
    return tuple(importlib.import_module(f"oldstore.{n}") for n in ("models", "samples", "rollups"))  # type: ignore[return-value]


@contextmanager
def database(kind: str, work: Path, label: str) -> Iterator[str]:
    """A fresh SQLite file or PostgreSQL schema, dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{work / (label + '.db')}"
        return
    schema = f"bench_{label}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{PG}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def table_bytes(conn: sa.Connection, names: list[str]) -> int:
    """Tables (with their partitions), indexes and TOAST, as on disk."""
    return sum(retention.relation_bytes(conn, name) for name in names)


def vacuum(url: str) -> None:
    """What a running store reaches: dead rows of replaced rollups reclaimed, stats fresh."""
    engine = sa.create_engine(url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if engine.dialect.name == "postgresql":  # this store's tables, not the database's
            tables = conn.execute(
                sa.text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            ).scalars()
            conn.execute(sa.text(f"VACUUM ANALYZE {', '.join(tables)}"))
        else:
            conn.execute(sa.text("VACUUM"))
    engine.dispose()


# --- data -------------------------------------------------------------------------------


def batches(nodes: int, gpus: int, minutes: int, start: float = T0) -> list[list[TelemetryBatch]]:
    """Per 5 s, every node's batch of 5 samples (the agent's default publish interval)."""
    streams = [Stream(f"n{gpus}g{i:04d}", gpus) for i in range(nodes)]
    rounds = []
    for r in range(minutes * 12):
        rounds.append(
            [
                TelemetryBatch(
                    node=s.name,
                    seq_first=r * 5,
                    samples=tuple(s.next(start + r * 5 + k) for k in range(5)),
                )
                for s in streams
            ]
        )
    return rounds


def write(url: str, rounds: list[list[TelemetryBatch]], insert: Callable[..., int]) -> float:
    """Node-samples/s through `insert`, a transaction per 200 batches."""
    engine = sa.create_engine(url)
    flat = [b for one in rounds for b in one]
    samples = sum(len(b.samples) for b in flat)
    started = time.perf_counter()
    for i in range(0, len(flat), 200):
        with engine.begin() as conn:
            insert(conn, flat[i : i + 200])
    elapsed = time.perf_counter() - started
    engine.dispose()
    return samples / elapsed


def roll(url: str, step: Callable[[sa.Connection], int]) -> tuple[float, float, int]:
    """(wall s, this process's CPU s, minutes) to roll up everything dirty."""
    engine = sa.create_engine(url)
    wall, cpu, done = time.perf_counter(), time.process_time(), 0
    while True:
        with engine.begin() as conn:
            n = step(conn)
        done += n
        if not n:
            break
    engine.dispose()
    return time.perf_counter() - wall, time.process_time() - cpu, done


# --- parts ------------------------------------------------------------------------------


def size_part(kind: str, work: Path, old: tuple, *, gpus: int, nodes: int, minutes: int) -> dict:
    old_models, old_samples, old_rollups = old
    rounds = batches(nodes, gpus, minutes)
    node_samples = nodes * minutes * 60
    values = node_samples * values_per_sample(gpus)
    figures: dict[str, dict[str, float]] = {}
    for label in ("new", "old"):
        with database(kind, work, f"size{gpus}{label}") as url:
            engine = sa.create_engine(url)
            if label == "new":
                upgrade(create_engine(url))
                write(url, rounds, sample_rows.insert_batches)
                roll(url, lambda c: rollup_rows.roll_up(c, T0 + 2 * DAY, 30.0))
                vacuum(url)
                with engine.connect() as conn:
                    raw = table_bytes(conn, ["raw_chunks"])
                    minute = table_bytes(conn, ["minute_rollups"])
                    hour = per_hour(conn, url, "hour_rollups", nodes)
            else:
                old_models.Base.metadata.create_all(engine)
                write(url, rounds, old_samples.insert_batches)
                roll(url, lambda c: old_rollups.roll_up(c, T0 + 2 * DAY))
                vacuum(url)
                with engine.connect() as conn:
                    raw = table_bytes(conn, ["samples", "gpu_samples"])
                    minute = table_bytes(conn, ["rollup_minute"])
                    hour = per_hour(conn, url, "rollup_hour", nodes)
            engine.dispose()
        figures[label] = {
            "raw_b_per_value": raw / values,
            "raw_b_per_node_sample": raw / node_samples,
            "minute_b_per_node_minute": minute / (nodes * minutes),
            "hour_b_per_node_hour": hour,
        }
    for label, f in figures.items():
        projected = project(f, gpus)
        log(
            f"size {kind} {gpus}-GPU {label}: raw {f['raw_b_per_value']:.2f} B/value "
            f"({f['raw_b_per_node_sample']:.0f} B/node-sample), minute "
            f"{f['minute_b_per_node_minute']:.0f} B/node-minute, hour "
            f"{f['hour_b_per_node_hour']:.0f} B/node-hour; 1,000 nodes, default retention: "
            + ", ".join(f"{k} {v / 1e12:.3f} TB" for k, v in projected.items())
        )
    ratios = {k: figures["new"][k] / figures["old"][k] for k in figures["new"]}
    log(f"size {kind} {gpus}-GPU ratios new/old: " + ", ".join(
        f"{k} {v:.3f}" for k, v in ratios.items()))  # fmt: skip
    return figures


def per_hour(conn: sa.Connection, url: str, table: str, nodes: int) -> float:
    """Bytes per node-hour of an hour tier, measured on 48 copies of its rows (one hour of
    a few nodes is too few rows to see past a table's first pages)."""
    source = sa.Table(table, sa.MetaData(), autoload_with=conn)
    rows = [dict(r) for r in conn.execute(sa.select(source)).mappings()]
    engine = sa.create_engine(url)
    with engine.begin() as out:
        for k in range(1, 48):
            out.execute(sa.insert(source), [r | {"bucket": r["bucket"] - k * HOUR} for r in rows])
    engine.dispose()
    vacuum(url)
    return table_bytes(conn, [table]) / (nodes * 48)


def project(f: dict[str, float], gpus: int) -> dict[str, float]:
    """Bytes for 1,000 nodes of this shape at 1 s, default retention."""
    return {
        "raw": f["raw_b_per_node_sample"] * 1000 * KEEP.raw,
        "minute": f["minute_b_per_node_minute"] * 1000 * KEEP.minute / MINUTE,
        "hour": f["hour_b_per_node_hour"] * 1000 * KEEP.hour / HOUR,
    }


def rates_part(kind: str, work: Path, old: tuple, gpus: int, nodes: int) -> None:
    old_models, old_samples, old_rollups = old
    rounds = batches(nodes, gpus, 3)
    results = {}
    for label in ("new", "old"):
        with database(kind, work, f"rate{gpus}{label}") as url:
            engine = sa.create_engine(url)
            if label == "new":
                upgrade(create_engine(url))
                rate = write(url, rounds, sample_rows.insert_batches)
                wall, cpu, done = roll(url, lambda c: rollup_rows.roll_up(c, T0 + 600, 30.0))
            else:
                old_models.Base.metadata.create_all(engine)
                rate = write(url, rounds, old_samples.insert_batches)
                wall, cpu, done = roll(url, lambda c: old_rollups.roll_up(c, T0 + 600))
            engine.dispose()
        results[label] = (rate, done / wall, done / max(cpu, 1e-9))
        log(
            f"rates {kind} {gpus}-GPU {label}: ingest {rate:,.0f} node-samples/s; rollup "
            f"{done} node-minutes in {wall:.2f} s wall ({cpu:.2f} s CPU here): "
            f"{done / wall:,.0f} node-minutes/s, one core keeps {60 * done / wall:,.0f} nodes "
            "current"
        )
    new, peer = results["new"], results["old"]
    log(
        f"rates {kind} {gpus}-GPU ratios new/old: ingest {new[0] / peer[0]:.2f}, "
        f"rollup {new[1] / peer[1]:.1f}"
    )


def retention_part(kind: str, work: Path, nodes: int, minutes: int) -> None:
    with database(kind, work, "retention") as url:
        engine = create_engine(url)
        upgrade(engine)
        with engine.begin() as conn:
            for tier in retention.TIERS:
                retention.ensure_partitions(conn, tier, T0, T0 + (COPIES + 1) * DAY)
        write(url, batches(nodes, 8, minutes), sample_rows.insert_batches)
        with engine.begin() as conn:
            rows = [dict(r) for r in conn.execute(sa.select(raw_chunks)).mappings()]
            per_day = len(rows)
            for day in range(1, COPIES):
                shift = {"ts_first": day * DAY, "ts_last": day * DAY, "seq_first": day * 10**6}
                shifted = [r | {k: r[k] + v for k, v in shift.items()} for r in rows]
                conn.execute(sa.insert(raw_chunks), shifted)
        vacuum(url)
        values = COPIES * nodes * minutes * 60 * values_per_sample(8)
        timings = []
        for _ in range(20):
            with engine.begin() as conn:
                started = time.perf_counter()
                assert retention.expire(conn, retention.RAW, T0 - DAY, 5000) == 0
                timings.append(time.perf_counter() - started)
        log(
            f"retention {kind}: {COPIES * per_day:,} chunks, {values / 1e6:.0f} M values; "
            f"a pass with nothing to expire: p50 {statistics.median(timings) * 1000:.2f} ms, "
            f"max {max(timings) * 1000:.2f} ms"
        )
        with engine.begin() as conn:
            pg = kind == "postgresql"
            before = len(retention.partitions(conn, retention.RAW)) if pg else 0
            started = time.perf_counter()
            removed = 0  # the first day has wholly expired once its chunks' last 600 s have
            while n := retention.expire(conn, retention.RAW, T0 + DAY + 600, 5000):
                removed += n
            took = time.perf_counter() - started
            dropped = before - len(retention.partitions(conn, retention.RAW)) if pg else 0
        how = f"{dropped} partition dropped" if dropped else f"{removed:,} rows deleted"
        log(
            f"retention {kind}: expiring one day ({per_day:,} chunks) took "
            f"{took * 1000:.1f} ms ({how})"
        )
        engine.dispose()


def queries_part(kind: str, work: Path, nodes: int, template: dict[str, dict]) -> None:
    with database(kind, work, "queries") as url:
        engine = create_engine(url)
        upgrade(engine)
        now = time.time() // HOUR * HOUR  # `dormouse report --since 7d` reads the clock
        fill_rollups(engine, nodes, now, template)
        vacuum(url)
        one = "n8g0000"
        node = BY_NAME["gpu_util_pct"]
        cases = {
            "history 24h at 1m, one node": (
                lambda: series_rows.history(
                    conn_of(engine), SeriesQuery(one, node, 0, now - DAY, now, MINUTE), "minute"
                )
            ),
            "history 30d at 1h, one node": (
                lambda: series_rows.history(
                    conn_of(engine), SeriesQuery(one, node, 0, now - 30 * DAY, now, HOUR), "hour"
                )
            ),
            f"--by fleet 7d at 1h, {nodes} nodes": lambda: fleet_query(engine, now),
        }
        for name, run in cases.items():
            timings = []
            for _ in range(7):
                started = time.perf_counter()
                answer = run()
                timings.append(time.perf_counter() - started)
            log(
                f"queries {kind}: {name}: p50 {statistics.median(timings) * 1000:.0f} ms "
                f"({len(answer)} series/points)"
            )
        report_command(url)
        for conn in _conns.values():
            conn.close()
        _conns.clear()
        engine.dispose()


_conns: dict[int, sa.Connection] = {}


def conn_of(engine: sa.Engine) -> sa.Connection:
    if id(engine) not in _conns:
        _conns[id(engine)] = engine.connect()
    return _conns[id(engine)]


def fleet_query(engine: sa.Engine, now: float) -> list:
    """`dormouse history --metric gpu_util_pct --since 7d --step 1h` (the fleet), as the
    CLI and the API run it, less the printing."""
    from coordinator.services import history  # noqa: PLC0415

    query = FleetQuery(BY_NAME["gpu_util_pct"], now - 7 * DAY, now, HOUR, "avg")
    answer = history.grouped(engine, query, "fleet", None, {}, KEEP, now)
    series: list[dict] = answer["series"]  # type: ignore[assignment]
    return series[0]["points"]


def fill_rollups(engine: sa.Engine, nodes: int, now: float, template: dict[str, dict]) -> None:
    """Hour rows for every node over 7 days (one node: 30), minute rows over the last 2 h
    (one node: 24 h), each a copy of a real row of the size part."""
    from coordinator.core.nodestate import NodeState  # noqa: PLC0415
    from coordinator.core.registry import NodeView  # noqa: PLC0415
    from coordinator.store import nodes as node_rows  # noqa: PLC0415

    names = [f"n8g{i:04d}" for i in range(nodes)]
    with engine.begin() as conn:
        node_rows.save_nodes(
            conn, [NodeView(name=n, state=NodeState.ONLINE, state_since=T0) for n in names]
        )
    for table, width, span, longest in (
        (rollup_hour, HOUR, 7 * DAY, 30 * DAY),
        (rollup_minute, MINUTE, 2 * HOUR, DAY),
    ):
        row = template[table.name]
        buckets = [now - width * (k + 1) for k in range(int(span // width))]
        for i in range(0, len(names), 50):
            with engine.begin() as conn:
                conn.execute(
                    sa.insert(table),
                    [row | {"node": n, "bucket": b} for n in names[i : i + 50] for b in buckets],
                )
        extra = [now - width * (k + 1) for k in range(int(span // width), int(longest // width))]
        with engine.begin() as conn:
            conn.execute(sa.insert(table), [row | {"node": names[0], "bucket": b} for b in extra])
    log(f"queries: {nodes} nodes x 7 d of hour rows, 2 h of minute rows written")


def report_command(url: str) -> None:
    """`dormouse report --since 7d` as a user runs it: a process, timed, its peak RSS
    (VmHWM: ru_maxrss would carry this benchmark's own size across the fork)."""
    env = os.environ | {"DORMOUSE_DB": url}
    timings, peaks = [], []
    for _ in range(3):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", AS_COMMAND], env=env, check=True, capture_output=True,
            text=True, cwd=ROOT,
        )  # fmt: skip
        timings.append(time.perf_counter() - started)
        peaks.append(float(done.stderr.strip().splitlines()[-1]))
    log(
        f"queries: dormouse report --since 7d: median {statistics.median(timings):.2f} s "
        f"(a whole command: start-up included), peak RSS {max(peaks):.0f} MB"
    )
    inside = subprocess.run(
        [sys.executable, "-c", IN_PROCESS], env=env, check=True, capture_output=True, text=True,
        cwd=ROOT,
    ).stdout.strip()  # fmt: skip
    log(f"queries: the report in-process (the command's work, less start-up): {inside}")


PEAK = """
def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""
AS_COMMAND = (
    PEAK
    + """
import sys
from coordinator.main import main
sys.argv = ["dormouse", "report", "--since", "7d", "--json"]
try:
    main()
except SystemExit:
    pass
print(peak_mb(), file=sys.stderr)
"""
)
IN_PROCESS = (
    PEAK
    + """
import statistics, time
from coordinator.cli.common import load, store
from coordinator.services import report
settings = load(None)
engine = store(None, None)
report.build(engine, settings, window_s=7 * 86400, now=time.time())  # warm: connect, import
timings = []
for _ in range(5):
    started = time.perf_counter()
    report.build(engine, settings, window_s=7 * 86400, now=time.time())
    timings.append(time.perf_counter() - started)
print(f"median {statistics.median(timings):.3f} s, peak RSS {peak_mb():.0f} MB (interpreter "
      "included)")
"""
)


def templates(kind: str, work: Path) -> dict[str, dict]:
    """A real 8-GPU minute row and hour row, for the queries part to copy."""
    rounds = batches(1, 8, 61)
    with database(kind, work, "template") as url:
        engine = create_engine(url)
        upgrade(engine)
        write(url, rounds, sample_rows.insert_batches)
        roll(url, lambda c: rollup_rows.roll_up(c, T0 + 2 * DAY, 30.0))
        with engine.connect() as conn:
            found = {
                t.name: dict(conn.execute(sa.select(t).limit(1)).mappings().one())
                for t in (rollup_minute, rollup_hour)
            }
        engine.dispose()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--part", choices=["size", "rates", "retention", "queries", "all"],
                        default="all")  # fmt: skip
    parser.add_argument("--size-nodes", type=int, default=20)
    parser.add_argument("--size-minutes", type=int, default=60)
    parser.add_argument("--rate-nodes", type=int, default=500)
    parser.add_argument("--nodes", type=int, default=1000)
    args = parser.parse_args()
    log(f"bench_store: {args.db}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        old = peer_modules(work)
        if args.part in {"size", "all"}:
            for gpus in (0, 8):
                size_part(args.db, work, old, gpus=gpus, nodes=args.size_nodes,
                          minutes=args.size_minutes)  # fmt: skip
        if args.part in {"rates", "all"}:
            for gpus in (0, 8):
                rates_part(args.db, work, old, gpus, args.rate_nodes)
        if args.part in {"retention", "all"}:
            retention_part(args.db, work, args.size_nodes, args.size_minutes)
        if args.part in {"queries", "all"}:
            queries_part(args.db, work, args.nodes, templates(args.db, work))


if __name__ == "__main__":
    main()
