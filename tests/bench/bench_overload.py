"""Overload: the fleet offers 1.5x what the coordinator can store, for 60 s (issue 32).

    .venv/bin/python tests/bench/bench_overload.py --setup all-sqlite
    .venv/bin/python tests/bench/bench_overload.py --setup split-postgresql

First the ceiling: `--ceiling-nodes` nodes (1 sample/s each, more than the coordinator can
take) for `--ceiling-seconds`, with a broker queue that never drops; the ceiling is what was
stored per second from the first send until everything was stored. Then the overload: 1.5x
the ceiling's nodes for `--seconds`, with the shipped broker's `max_queued_messages`
(configs/mosquitto/dormouse.conf: 100,000), and again with `--past-queue` (a queue the
overload overflows: what happens past the shipped settings). The publisher sends
pre-encoded batches (5 samples every 5 s per node, staggered, as `bench_scale_out`) and keeps
every batch, so it answers the coordinator's `resend` commands as an agent's spool would
(it holds every seq: nothing can be truly lost). After the overload the fleet goes on
quietly: every node sends one batch each 30 s (so a node's dropped last batches are found, as
a real agent's next batch finds them) until the store holds everything published.

Reported per run: published and stored samples, the store's holes (published - stored) and
the coordinator's `seqs_lost` (they must agree: 0), the broker's drop notices, resends the
coordinator asked for, the time from the end of publishing until the store held every
published seq (the catch-up), lag p99, and the coordinator processes' peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import paho.mqtt.client as mqtt
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion

from coordinator.store.engine import create_engine, upgrade
from coordinator.store.models import raw_chunks
from shared.codec import decode, encode
from shared.messages import Resend, TelemetryBatch
from shared.topics import Kind, parse_topic, subscription, topic
from tests.bench.bench_ingest import coordinator_env, db_url, drop, realistic_sample, start_broker
from tests.bench.bench_scale_out import BATCH, Load, encode_cost, encode_load
from tests.integration.agent_support import KEY

SHIPPED_QUEUE = 100_000  # configs/mosquitto/dormouse.conf's max_queued_messages
CATCH_UP_LIMIT_S = 600.0
HEARTBEAT_S = 30.0  # after the overload every node sends a batch this often (a quiet fleet)


class Fleet:
    """Publishes a load and answers resends from what it sent (a spool that keeps all)."""

    def __init__(self, port: int, load: Load) -> None:
        self.load, self.resends, self.published = load, 0, 0
        self.sent: dict[str, list[tuple[int, str, bytes]]] = defaultdict(list)
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-fleet")
        self.client.max_inflight_messages_set(2000)
        self.client.max_queued_messages_set(0)
        self.client.on_message = self._on_command
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(subscription(Kind.CMD), qos=1)
        self.client.loop_start()

    def publish(self) -> int:
        for name, payload in self.load.hellos:
            self.client.publish(name, payload, qos=1, retain=True)
        published = 0
        for at, name, payload in self.load.batches:
            delay = at - time.time()
            if delay > 0:
                time.sleep(delay)
            node = parse_topic(name).node
            with self._lock:
                self.sent[node].append((len(self.sent[node]) * BATCH, name, payload))
            self.client.publish(name, payload, qos=1)
            published += BATCH
        return published

    def heartbeat(self, stop: threading.Event) -> None:
        """The fleet goes on, quietly: one more batch from each node every `HEARTBEAT_S`,
        spread over it, until `stop` (a node's dropped last batches are found only when a
        later one arrives, as a real agent's next batch finds them)."""
        nodes = [parse_topic(name).node for name, _ in self.load.hellos]
        while not stop.is_set():
            for node in nodes:
                if stop.wait(HEARTBEAT_S / len(nodes)):
                    return
                with self._lock:
                    first = len(self.sent[node]) * BATCH
                    now = time.time()
                    samples = tuple(
                        realistic_sample(now - BATCH + 1 + i, first + i) for i in range(BATCH)
                    )
                    payload = encode(TelemetryBatch(node=node, seq_first=first, samples=samples))
                    self.sent[node].append((first, topic(node, Kind.TELEMETRY), payload))
                    self.published += BATCH
                self.client.publish(topic(node, Kind.TELEMETRY), payload, qos=1)

    def _on_command(self, _client: object, _data: object, message: mqtt.MQTTMessage) -> None:
        node = parse_topic(message.topic).node
        command = decode(bytes(message.payload), Kind.CMD, node)
        body = getattr(command, "body", None)
        if not isinstance(body, Resend):
            return
        with self._lock:
            held = list(self.sent[node])
        for first, name, payload in held:
            if first <= body.to_seq and body.from_seq <= first + BATCH - 1:
                self.client.publish(name, payload, qos=1)
        self.resends += 1

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def processes(
    url: str, port: int, work: Path, setup: str, nodes: int
) -> list[subprocess.Popen[bytes]]:
    base = coordinator_env(url, port, work) | {
        "DORMOUSE_RESEND_RETRY": "10s",
        "DORMOUSE_MAX_NODES": str(max(20_000, nodes)),  # past the default, hellos are refused
    }
    roles = ["all"] if setup == "all-sqlite" else ["leader", "ingest", "ingest"]
    started = []
    for i, role in enumerate(roles):
        env = base | {"DORMOUSE_ROLE": role, "DORMOUSE_CLIENT_ID": f"{role}-{i}"}
        log = (work / f"{role}-{i}.log").open("ab")
        started.append(
            subprocess.Popen(
                [sys.executable, "-m", "coordinator", "run"], env=env, stdout=log, stderr=log
            )
        )
    return started


def stored_count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        total = conn.execute(
            sa.select(
                sa.func.coalesce(sa.func.sum(raw_chunks.c.seq_last - raw_chunks.c.seq_first + 1), 0)
            )
        ).scalar_one()
    return int(total)  # PostgreSQL's sum is a Decimal


def complete(engine: sa.Engine, per_node: int) -> bool:
    """Every node's stored seqs run from 0 with no hole and reach past the overload's
    `per_node` samples (the quiet fleet's later batches may be in flight)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.sum(
                    sa.case(
                        (
                            sa.and_(
                                sa.literal_column("n") == sa.literal_column("high") + 1,
                                sa.literal_column("low") == 0,
                                sa.literal_column("high") >= per_node - 1,
                            ),
                            1,
                        ),
                        else_=0,
                    )
                ),
            ).select_from(
                sa.select(
                    sa.func.sum(raw_chunks.c.seq_last - raw_chunks.c.seq_first + 1).label("n"),
                    sa.func.min(raw_chunks.c.seq_first).label("low"),
                    sa.func.max(raw_chunks.c.seq_last).label("high"),
                )
                .group_by(raw_chunks.c.node)
                .subquery()
            )
        ).one()
    return bool(rows[0]) and int(rows[0]) == int(rows[1] or 0)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def figures(url: str, port: int, work: Path) -> dict[str, float]:
    env = coordinator_env(url, port, work)
    said = subprocess.run(
        [sys.executable, "-m", "coordinator", "status", "--json"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    status = json.loads(said.stdout)
    values = {k: f["value"] for k, f in status["figures"].items()}
    workers = [w for w in status.get("workers") or [] if w["role"] != "leader"]
    if workers:  # split roles: the leader ingests nothing; the workers' worst lag counts
        values["lag_p99_s"] = max(w["lag_p99_s"] or 0.0 for w in workers)
    return values


def run(setup: str, node_count: int, seconds: float, queue: int) -> dict[str, float]:
    kind = "sqlite" if setup == "all-sqlite" else "postgresql"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "key").write_text(KEY)
        (work / "key").chmod(0o600)
        broker, port = start_broker(work, queue)
        url = db_url(kind, work)
        upgrade(create_engine(url))
        coordinators = processes(url, port, work, setup, node_count)
        names = [f"sim{n:05d}" for n in range(node_count)]
        start = time.time() + 3 + encode_cost() * len(names) * (seconds // BATCH) * 1.3
        load = encode_load(names, start, seconds)
        time.sleep(max(0.0, start - time.time()))
        fleet = Fleet(port, load)
        engine = create_engine(url)
        published = fleet.publish()
        ended = time.time()
        during = stored_count(engine)
        stored = during
        fleet.published = published
        stop = threading.Event()
        beats = threading.Thread(target=fleet.heartbeat, args=(stop,))
        beats.start()
        per_node = int(seconds // BATCH) * BATCH
        while time.time() < ended + CATCH_UP_LIMIT_S and not (
            stored_count(engine) >= published and complete(engine, per_node)
        ):
            time.sleep(2)
        caught_up = time.time() - ended
        stop.set()
        beats.join()
        published = fleet.published
        time.sleep(12)  # the processes write their figures every 5 s; late resends settle
        stored = stored_count(engine)
        said = figures(url, port, work)
        rss = max(peak_rss_mib(p.pid) for p in coordinators)
        engine.dispose()
        fleet.close()
        for process in coordinators:
            process.terminate()
            process.wait(timeout=60)
        broker.terminate()
        broker.wait()
        drops = (work / "mosquitto.log").read_text(errors="replace").count("being dropped")
        drop(url)
    return {
        "nodes": node_count,
        "published": published,
        "stored": stored,
        "holes": published - stored,
        "seqs_lost": said.get("seqs_lost", float("nan")),
        "stored_per_s_while_sending": during / seconds,
        "stored_per_s": stored / (seconds + caught_up),
        "broker_drop_notices": drops,
        "resends_asked": said.get("resends_sent", 0),
        "resends_answered": fleet.resends,
        "catch_up_s": caught_up,
        "lag_p99_s": said.get("lag_p99_s", float("nan")),
        "peak_rss_mib": rss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setup", choices=["all-sqlite", "split-postgresql"], default="all-sqlite")
    parser.add_argument("--ceiling-nodes", type=int, default=20_000)
    parser.add_argument("--ceiling-seconds", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--factor", type=float, default=1.5)
    parser.add_argument("--past-queue", type=int, default=5_000)
    parser.add_argument(
        "--ceiling", type=float, default=0.0,
        help="samples/s measured before (skips the ceiling run)",
    )  # fmt: skip
    parser.add_argument("--queues", default="shipped,past", help="which overload runs")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; setup: {args.setup}", flush=True)
    rate = args.ceiling
    if not rate:
        ceiling = run(args.setup, args.ceiling_nodes, args.ceiling_seconds, 1_000_000)
        rate = ceiling["stored_per_s"]
        print(f"ceiling: {json.dumps(ceiling)}", flush=True)
    nodes = int(rate * args.factor)
    print(f"ceiling {rate:.0f} samples/s; overload: {nodes} nodes for {args.seconds:g} s")
    queues = {"shipped": SHIPPED_QUEUE, "past": args.past_queue}
    for queue in (queues[q] for q in args.queues.split(",")):
        over = run(args.setup, nodes, args.seconds, queue)
        print(f"overload: {json.dumps(over)}")
        print(
            f"{args.factor:g}x the ceiling ({nodes} nodes, queue {queue}): published "
            f"{over['published']}, holes {over['holes']}, seqs_lost {over['seqs_lost']:.0f}, "
            f"broker drop notices {over['broker_drop_notices']}, resends asked "
            f"{over['resends_asked']:.0f}, caught up {over['catch_up_s']:.0f} s after the end, "
            f"lag p99 {over['lag_p99_s']:.1f} s, peak RSS {over['peak_rss_mib']:.0f} MiB",
            flush=True,
        )


if __name__ == "__main__":
    main()
