"""Scale-out ingest on PostgreSQL: one leader and 1 or 2 `--role ingest` workers (issue 13).

    .venv/bin/python tests/bench/bench_scale_out.py --nodes 5000,10000,20000 --workers 1,2

One publisher process sends pre-encoded batches (5 samples every 5 s per node, staggered:
1 sample/s per node, encoded before the clock starts so the load generator costs little)
to a private Mosquitto; a leader and N ingest workers (each its own process) store them in a
fresh PostgreSQL schema. Peer in the same run: a plain `mosquitto_sub` on the same topics,
writing to a file nobody reads (the broker's delivery ceiling); dormouse's stored rate is
reported as a fraction of the rate it received.

Per run: stored/s, lost, lag p50/p99 (sample stamp to commit, the workers' own figures, the
worst worker), and each worker's CPU seconds per 10,000 samples it stored (from /proc).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion

from coordinator.store.engine import create_engine, upgrade
from coordinator.store.models import raw_chunks, workers
from shared.codec import encode
from shared.messages import Hello, TelemetryBatch
from shared.topics import Kind, subscription, topic
from tests.bench.bench_ingest import PG, coordinator_env, drop, realistic_sample, start_broker

BATCH = 5  # samples per batch, one batch per node every BATCH seconds
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Load:
    """Every message of a run, encoded before it starts: (send at, topic, payload)."""

    hellos: list[tuple[str, bytes]]
    batches: list[tuple[float, str, bytes]]


def encode_load(nodes: list[str], start: float, seconds: float) -> Load:
    hellos = [
        (topic(n, Kind.HELLO), encode(Hello(node=n, ts=start - 10, hostname=n,
                                            agent_version="bench", cpus=32,
                                            mem_total_bytes=2**38)))
        for n in nodes
    ]  # fmt: skip
    batches = []
    for k, node in enumerate(nodes):
        offset = BATCH * k / len(nodes)
        for r in range(int(seconds // BATCH)):
            at, first = start + offset + BATCH * r, BATCH * r
            samples_ = tuple(realistic_sample(at - BATCH + 1 + i, first + i) for i in range(BATCH))
            batch = TelemetryBatch(node=node, seq_first=first, samples=samples_)
            batches.append((at, topic(node, Kind.TELEMETRY), encode(batch)))
    batches.sort(key=lambda b: b[0])
    return Load(hellos, batches)


def encode_cost(count: int = 200) -> float:
    started = time.perf_counter()
    encode_load([f"probe{i}" for i in range(count)], time.time(), BATCH)
    return (time.perf_counter() - started) / count


def publish(port: int, load: Load) -> int:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex}")
    client.max_inflight_messages_set(2000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    for name, payload in load.hellos:
        client.publish(name, payload, qos=1, retain=True)
    sent = 0
    for at, name, payload in load.batches:
        delay = at - time.time()
        if delay > 0:
            time.sleep(delay)
        client.publish(name, payload, qos=1)
        sent += BATCH
    time.sleep(2)  # in-flight QoS 1 messages finish
    client.loop_stop()
    client.disconnect()
    return sent


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def schema_url() -> str:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with sa.create_engine(PG).begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = f"{PG}?options=-csearch_path%3D{schema}"
    upgrade(create_engine(url))
    return url


def coordinator(url: str, port: int, work: Path, role: str, name: str) -> subprocess.Popen[bytes]:
    env = coordinator_env(url, port, work) | {
        "DORMOUSE_ROLE": role,
        "DORMOUSE_CLIENT_ID": name,
    }
    log = (work / f"{name}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "coordinator", "run"], env=env, stdout=log, stderr=log
    )


def run(node_count: int, worker_count: int, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        broker, port = start_broker(work)
        url = schema_url()
        leader = coordinator(url, port, work, "leader", "leader")
        ingest = [coordinator(url, port, work, "ingest", f"w{i}") for i in range(worker_count)]
        peer_out = work / "peer.out"
        with peer_out.open("wb") as out:
            peer = subprocess.Popen(
                ["mosquitto_sub", "-p", str(port), "-q", "1", "-F", ".", "-N",
                 "-t", subscription(Kind.TELEMETRY)],
                stdout=out,
            )  # fmt: skip
        names = [f"sim{n:05d}" for n in range(node_count)]
        start = time.time() + 3 + encode_cost() * len(names) * (seconds // BATCH) * 1.3
        load = encode_load(names, start, seconds)
        time.sleep(max(0.0, start - time.time()))
        cpu0 = {p.pid: cpu_s(p.pid) for p in ingest}
        sent = publish(port, load)
        engine = create_engine(url)
        stored, deadline = 0, time.time() + 90
        while time.time() < deadline:
            with engine.connect() as conn:
                stored = conn.execute(
                    sa.select(
                        sa.func.coalesce(
                            sa.func.sum(raw_chunks.c.seq_last - raw_chunks.c.seq_first + 1), 0
                        )
                    )
                ).scalar_one()
            if stored >= sent:
                break
            time.sleep(0.5)
        drained = time.time() - start
        cpu = {p.pid: cpu_s(p.pid) - cpu0[p.pid] for p in ingest}
        time.sleep(6)  # each process writes its row every 5 s
        with engine.connect() as conn:
            rows = {r.id: r.figures for r in conn.execute(sa.select(workers))}
        engine.dispose()
        peer.terminate()
        peer.wait()
        received = peer_out.stat().st_size * BATCH
        for process in (leader, *ingest):
            process.terminate()
            process.wait(timeout=30)
        broker.terminate()
        broker.wait()
        drop(url)
    shares = {pid: rows.get(f"{os.uname().nodename}:{pid}", {}) for pid in cpu}
    per_10k = [
        cpu[pid] / (share.get("samples_stored", 0) / 10_000)
        for pid, share in shares.items()
        if share.get("samples_stored")
    ]
    published_s = seconds + 2
    return {
        "nodes": node_count,
        "workers": worker_count,
        "sent": sent,
        "stored": stored,
        "lost": sent - stored,
        "stored_per_s": stored / drained,
        "peer_per_s": received / published_s,
        "peer_received": received,
        "lag_p50_s": statistics.median(s.get("lag_p50_s", 0.0) for s in shares.values()),
        "lag_p99_s": max(s.get("lag_p99_s", 0.0) for s in shares.values()),
        "cpu_s_per_10k": statistics.mean(per_10k) if per_10k else float("nan"),
        "shares": [int(s.get("samples_stored", 0)) for s in shares.values()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", default="5000,10000,20000")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; store: PostgreSQL; {args.seconds:g} s per run")
    print(
        f"{'nodes':>6} {'workers':>7} {'stored/s':>9} {'peer/s':>8} {'ratio':>6} {'lost':>6} "
        f"{'lag p50':>8} {'lag p99':>8} {'cpu s/10k':>9}  shares"
    )
    for count in (int(n) for n in args.nodes.split(",")):
        for worker_count in (int(w) for w in args.workers.split(",")):
            r = run(count, worker_count, args.seconds)
            ratio = r["stored_per_s"] / r["peer_per_s"] if r["peer_per_s"] else float("nan")
            print(
                f"{r['nodes']:6d} {r['workers']:7d} {r['stored_per_s']:9.0f} "
                f"{r['peer_per_s']:8.0f} {ratio:6.2f} {r['lost']:6d} {r['lag_p50_s']:8.2f} "
                f"{r['lag_p99_s']:8.2f} {r['cpu_s_per_10k']:9.2f}  {r['shares']}",
                flush=True,
            )


if __name__ == "__main__":
    main()
