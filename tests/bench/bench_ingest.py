"""Ingest throughput and history latency (issue 4's benchmark).

    .venv/bin/python tests/bench/bench_ingest.py --db sqlite --nodes 1000,2000,5000
    .venv/bin/python tests/bench/bench_ingest.py --db postgresql --nodes 1000,2000
    .venv/bin/python tests/bench/bench_ingest.py --history-only --db sqlite
    .venv/bin/python tests/bench/bench_ingest.py --nodes 1000 --seconds 60 --api-rps 150

Simulated agents (publisher processes sending realistic batches: 1 sample/s per node, a batch
of 5 every 5 s, staggered) -> a private Mosquitto (tests/fixtures/mosquitto.conf.in) -> a
coordinator process -> the store. For each node count: samples/s stored, loss, and the lag
from sample time to commit (p50/p99, as the coordinator records it). Then history: one
node, 24 h at 1-minute step, from a store of 100 nodes x 7 days of minute rollups. With
`--api-rps R`, each node count runs twice, the second time with `GET /api/v1/nodes` asked R
times a second on a keep-alive connection while the fleet publishes (the coordinator serving
its API and console, `[http] listen`): ingest lag p99 with the API busy against without.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion

from coordinator.core.aggregates import pack, pack_usage
from coordinator.core.series import SeriesQuery
from coordinator.store import series as series_rows
from coordinator.store.engine import create_engine, upgrade
from coordinator.store.models import raw_chunks, rollup_minute, stats
from shared.codec import encode
from shared.messages import Hello, Sample, TelemetryBatch
from shared.metrics import BY_NAME
from shared.topics import Kind, topic

ROOT = Path(__file__).parents[2]
PG = os.environ.get("DORMOUSE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def realistic_sample(ts: float, i: int) -> Sample:
    cpu = float(i % 100)
    return Sample(
        ts=ts,
        metrics={
            "cpu_util_pct": cpu,
            "cpu_core_util_pct": tuple(float((i + c) % 100) for c in range(16)),
            "cpu_freq_mhz": 2400.0 + i % 800,
            "load_avg_1m": 1.5,
            "load_avg_5m": 1.2,
            "load_avg_15m": 1.0,
            "mem_total_bytes": 2**37,
            "mem_used_bytes": 2**35 + i,
            "mem_available_bytes": 2**36,
            "swap_used_bytes": 0,
            "rapl_package_energy_j": 100.0 * i,
            "rapl_dram_energy_j": 10.0 * i,
            "rapl_power_w": 100.0,
            "power_w": 100.0,
            "connections": i % 7,
            "jobs_running": 1,
        },
    )


def publisher(port: int, nodes: list[str], seconds: float, counter: Synchronized[int]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    for node in nodes:  # the coordinator takes nothing from a node before its hello
        hello = Hello(node=node, ts=time.time(), hostname=node, agent_version="bench",
                      cpus=32, mem_total_bytes=2**38)  # fmt: skip
        client.publish(topic(node, Kind.HELLO), encode(hello), qos=1, retain=True)
    start, seq, sent = time.time(), dict.fromkeys(nodes, 0), 0
    due = {n: start + 5.0 * k / len(nodes) for k, n in enumerate(nodes)}
    while time.time() < start + seconds:
        now = time.time()
        for node in nodes:
            if due[node] <= now:
                first = seq[node]
                batch = TelemetryBatch(
                    node=node,
                    seq_first=first,
                    samples=tuple(realistic_sample(now - 4 + k, first + k) for k in range(5)),
                )
                client.publish(topic(node, Kind.TELEMETRY), encode(batch), qos=1)
                seq[node] += 5
                sent += 5
                due[node] += 5.0
        time.sleep(0.02)
    time.sleep(2)  # let in-flight QoS 1 messages finish
    client.loop_stop()
    client.disconnect()
    with counter.get_lock():
        counter.value += sent


def api_load(port: int, token: str, rps: float, seconds: float, done: Synchronized[int]) -> None:
    """`GET /api/v1/nodes` at `rps` on one keep-alive connection (a dashboard's poll),
    for `seconds`; `done` counts the answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}"}
    start, answered = time.monotonic(), 0
    while time.monotonic() < start + seconds:
        due = start + answered / rps
        time.sleep(max(0.0, due - time.monotonic()))
        connection.request("GET", "/api/v1/nodes", headers=headers)
        response = connection.getresponse()
        response.read()
        answered += 1
    with done.get_lock():
        done.value += answered


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_broker(work: Path, queue: int = 1_000_000) -> tuple[subprocess.Popen[bytes], int]:
    """The tests' Mosquitto on a free port; `queue`: its max_queued_messages."""
    port = free_port()
    template = (ROOT / "tests/fixtures/mosquitto.conf.in").read_text()
    import getpass  # noqa: PLC0415

    conf = work / "mosquitto.conf"
    conf.write_text(template.format(port=port, dir=work, user=getpass.getuser(), queue=queue))
    broker = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(conf)])
    time.sleep(0.5)
    return broker, port


def db_url(kind: str, work: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{work / 'bench.db'}"
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with sa.create_engine(PG).begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    return f"{PG}?options=-csearch_path%3D{schema}"


def drop(url: str) -> None:
    if "search_path" in url:
        schema = url.rsplit("%3D", 1)[1]
        with sa.create_engine(PG).begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))


def coordinator_env(url: str, port: int, work: Path) -> dict[str, str]:
    """A benchmark coordinator's environment: this store and broker, quiet, no offlines."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("DORMOUSE_")},
        "DORMOUSE_DB": url,
        "DORMOUSE_BROKER": f"mqtt://127.0.0.1:{port}",
        "DORMOUSE_DATA_DIR": str(work),
        "DORMOUSE_COMMAND_KEY_FILE": str(work / "key"),
        "DORMOUSE_LOG_LEVEL": "warning",
        "DORMOUSE_OFFLINE_AFTER": "1h",
    }


def ingest_run(
    kind: str, node_count: int, seconds: float, api_rps: float = 0.0
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        broker, port = start_broker(work)
        url = db_url(kind, work)
        env = coordinator_env(url, port, work)
        http_port = free_port()
        if api_rps:
            env["DORMOUSE_HTTP_LISTEN"] = f"127.0.0.1:{http_port}"
        coordinator = subprocess.Popen([sys.executable, "-m", "coordinator", "run"], env=env)
        time.sleep(3)
        names = [f"sim{n:05d}" for n in range(node_count)]
        counter = multiprocessing.Value("q", 0)
        answered = multiprocessing.Value("q", 0)
        publishers = [
            multiprocessing.Process(target=publisher, args=(port, names[k::2], seconds, counter))
            for k in range(2)
        ]
        if api_rps:
            made = subprocess.run(
                [sys.executable, "-m", "coordinator", "token", "create", "--scope", "read"],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            load = (http_port, made.stdout.strip(), api_rps, seconds, answered)
            publishers.append(multiprocessing.Process(target=api_load, args=load))
        started = time.time()
        for process in publishers:
            process.start()
        for process in publishers:
            process.join()
        engine = create_engine(url)
        stored, deadline = 0, time.time() + 60
        while time.time() < deadline:
            with engine.connect() as conn:
                stored = int(
                    conn.execute(
                        sa.select(
                            sa.func.coalesce(
                                sa.func.sum(raw_chunks.c.seq_last - raw_chunks.c.seq_first + 1), 0
                            )
                        )
                    ).scalar_one()
                )  # PostgreSQL's sum is a Decimal
            if stored >= counter.value:
                break
            time.sleep(1)
        drained = time.time() - started
        time.sleep(6)  # the coordinator writes its stats every 5 s
        with engine.connect() as conn:
            values = dict(conn.execute(sa.select(stats.c.key, stats.c.value)).all())
        engine.dispose()
        coordinator.terminate()
        coordinator.wait(timeout=30)
        broker.terminate()
        broker.wait()
        drop(url)
    return {
        "nodes": node_count,
        "published": counter.value,
        "stored": stored,
        "lost": counter.value - stored,
        "stored_per_s": stored / drained,
        "offered_per_s": node_count,
        "lag_p50_s": values.get("lag_p50_s", float("nan")),
        "lag_p99_s": values.get("lag_p99_s", float("nan")),
        "api_per_s": answered.value / seconds,
    }


def history_run(kind: str, nodes: int = 100, days: int = 7, queries: int = 50) -> dict[str, float]:
    """Minute rollups of 4 metrics for `nodes` x `days`, then 24 h of one at a 1-minute step."""
    with tempfile.TemporaryDirectory() as tmp:
        url = db_url(kind, Path(tmp))
        engine = create_engine(url)
        upgrade(engine)
        end = 1_763_884_800.0
        metrics = ["cpu_util_pct", "mem_used_bytes", "power_w", "load_avg_1m"]
        rows = 0
        for n in range(nodes):
            chunk = [
                {
                    "node": f"sim{n:05d}",
                    "bucket": end - 60.0 * k,
                    "gpus": b"",
                    "usage": pack_usage(np.zeros(3)),
                    **{m: pack(np.array([[60, float(k % 100), 0.0, 100.0]])) for m in metrics},
                }
                for k in range(days * 1440)
            ]
            with engine.begin() as conn:
                conn.execute(sa.insert(rollup_minute), chunk)
            rows += len(chunk)
        query = SeriesQuery(
            node="sim00042",
            metric=BY_NAME["cpu_util_pct"],
            gpu_index=-1,
            since=end - 86400,
            until=end,
            step_s=60,
        )
        times = []
        for _ in range(queries):
            begin = time.perf_counter()
            with engine.connect() as conn:
                points = series_rows.history(conn, query, "minute")
            times.append((time.perf_counter() - begin) * 1000)
        engine.dispose()
        drop(url)
    assert len(points) == 1440
    times.sort()
    return {
        "rows": rows,
        "points": len(points),
        "p50_ms": statistics.median(times),
        "p99_ms": times[int(len(times) * 0.99)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--nodes", default="1000,2000,5000")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--history-only", action="store_true")
    parser.add_argument(
        "--api-rps", type=float, default=0.0,
        help="also run each node count with GET /api/v1/nodes at this rate (and no history)",
    )  # fmt: skip
    args = parser.parse_args()
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        sys.exit("mosquitto is not installed")
    print(f"machine: {os.cpu_count()} cores; store: {args.db}")
    if not args.history_only:
        print(
            f"{'nodes':>6} {'API req/s':>9} {'offered/s':>9} {'stored/s':>9} {'published':>9} "
            f"{'lost':>6} {'lag p50 s':>9} {'lag p99 s':>9}"
        )
        for count in (int(n) for n in args.nodes.split(",")):
            runs = [ingest_run(args.db, count, args.seconds)]
            if args.api_rps:  # the peer: the same load with the API busy
                runs.append(ingest_run(args.db, count, args.seconds, args.api_rps))
            for r in runs:
                print(
                    f"{r['nodes']:6d} {r['api_per_s']:9.0f} {r['offered_per_s']:9.0f} "
                    f"{r['stored_per_s']:9.0f} {r['published']:9d} {r['lost']:6d} "
                    f"{r['lag_p50_s']:9.2f} {r['lag_p99_s']:9.2f}",
                    flush=True,
                )
            if len(runs) == 2:
                ratio = runs[1]["lag_p99_s"] / runs[0]["lag_p99_s"]
                print(f"  lag p99 with the API busy / without: {ratio:.2f}x (goal <= 1.5x)")
        if args.api_rps:
            return
    h = history_run(args.db)
    print(
        f"history: 24 h at 1 min of one node, store of {h['rows']} minute rows: "
        f"p50 {h['p50_ms']:.1f} ms, p99 {h['p99_ms']:.1f} ms"
    )


if __name__ == "__main__":
    main()
