"""Scale-out on one PostgreSQL store and one Mosquitto: `dormouse run --role ingest` workers
share the telemetry through an MQTT 5 shared subscription, a `--role leader` process
decides and finds gaps in the store (real processes, real agents).
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections import defaultdict

import pytest
import sqlalchemy as sa

from coordinator.core import aggregates
from coordinator.store import rollups as rollup_rows
from coordinator.store import samples as sample_rows
from tests.integration.coordinator_support import CoordinatorProcess, stored_seqs
from tests.integration.test_jobs import eventually, start_agents

pytestmark = [pytest.mark.mqtt, pytest.mark.pg]
pg_only = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # a fresh schema
SLOW_FLUSH = """
import time
from coordinator.store import samples
_insert = samples.insert_batches
def _slow(*args, **kwargs):
    time.sleep(0.4)  # a store that takes 0.4 s a write: this worker falls behind
    return _insert(*args, **kwargs)
samples.insert_batches = _slow
"""


def process(db_url, mosquitto, workdir, role: str, group: str, **env: str) -> CoordinatorProcess:
    workdir.mkdir()
    extra = {
        "DORMOUSE_ROLE": role,
        "DORMOUSE_SHARE_GROUP": group,
        "DORMOUSE_LEADER_LEASE": "4s",
        "DORMOUSE_JOBS_SCHEDULE_INTERVAL": "0.2s",
        "DORMOUSE_LOG_LEVEL": "info",
        **env,
    }
    return CoordinatorProcess(db_url=db_url, broker=mosquitto.url, workdir=workdir, extra_env=extra)


def workers(coordinator: CoordinatorProcess) -> dict[str, dict]:
    return {w["id"]: w for w in coordinator.cli("status")["workers"]}


def count_samples(db_url: str) -> int:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            query = "SELECT coalesce(sum(seq_last - seq_first + 1), 0) FROM raw_chunks"
            return int(conn.execute(sa.text(query)).scalar_one())
    finally:
        engine.dispose()


async def every_node_contiguous(db_url: str, fleet, timeout_s: float) -> dict[str, list[int]]:
    """Wait until each node's stored seqs run without a hole from its first; return them."""
    found: dict[str, list[int]] = {}

    def contiguous() -> bool:
        for agent in fleet:
            seqs = stored_seqs(db_url, agent.node)
            found[agent.node] = seqs
            if not seqs or seqs != list(range(seqs[0], seqs[-1] + 1)):
                return False
        return True

    await eventually(contiguous, timeout_s, "every node's samples without a gap")
    return found


def rollups_match_the_samples(db_url: str) -> int:
    """Roll up every minute the workers marked, as the leader does, and compare each
    node-minute's CPU figures with a direct aggregation of the stored samples."""
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            while rollup_rows.roll_up(conn, time.time() + 3600, 30.0):
                pass
        with engine.connect() as conn:
            rolled = {}
            for node, bucket, blob in conn.execute(
                sa.text("SELECT node, bucket, cpu_util_pct FROM minute_rollups")
            ):
                count, avg = aggregates.unpack(blob)[0][:2]
                rolled[(node, float(bucket))] = (int(count), float(avg))
            values = defaultdict(list)
            for node, blocks in sample_rows.read_blocks(conn, None, 0, 2e10).items():
                for block in blocks:
                    for ts, cpu in zip(block.ts, block.values[:, 1], strict=True):
                        values[(node, float(ts // 60 * 60))].append(float(cpu))
            direct = {k: (len(v), sum(v) / len(v)) for k, v in values.items()}
    finally:
        engine.dispose()
    # rollups keep float32 means: equal to float32's precision, not to a rounding (a mean at
    # 35.9495 rounds to 35.95 stored and to 35.949 computed)
    assert rolled.keys() == direct.keys()
    for key, (count, mean) in direct.items():
        assert rolled[key][0] == count, key
        assert rolled[key][1] == pytest.approx(mean, rel=1e-6), key
    return len(rolled)


def stop_gracefully(fleet) -> None:
    """SIGTERM: each agent sends what its spool holds before it exits."""
    for agent in fleet:
        agent.kill(signal.SIGTERM)


@pg_only
async def test_two_ingest_workers_split_twenty_agents_and_store_each_seq_once(
    db_url, mosquitto, tmp_path
):
    group = f"g{uuid.uuid4().hex[:8]}"
    leader = process(db_url, mosquitto, tmp_path / "leader", "leader", group)
    leader.start()  # first: it migrates the store
    ingest = [process(db_url, mosquitto, tmp_path / f"w{i}", "ingest", group) for i in (1, 2)]
    for worker in ingest:
        worker.start()
    fleet = start_agents(mosquitto, tmp_path, [1] * 20)
    try:
        await eventually(lambda: count_samples(db_url) >= 20 * 40, 60, "samples stored")
        await asyncio.sleep(3)
        stop_gracefully(fleet)
        found = await every_node_contiguous(db_url, fleet, 60)

        def settled() -> dict[str, dict] | None:
            seen = workers(leader)
            stored = sum(w["samples_stored"] for w in seen.values())
            return seen if stored == count_samples(db_url) else None

        seen = await eventually(settled, 20, "every worker's figures written")
        found = await every_node_contiguous(db_url, fleet, 5)  # the last in flight included
    finally:
        for agent in fleet:
            agent.kill()
        for one in (leader, *ingest):
            one.kill()
    shares = {w["role"]: [] for w in seen.values()}
    for row in seen.values():
        shares[row["role"]].append(row["samples_stored"])
    assert len(shares["ingest"]) == 2
    assert all(share > 0 for share in shares["ingest"]), shares  # both took a share
    assert shares["leader"] == [0]  # the leader reads no telemetry
    total = sum(len(seqs) for seqs in found.values())
    assert total == count_samples(db_url) == sum(shares["ingest"])  # each (node, seq) once
    figures = leader.stats()
    assert figures["seqs_lost"] == 0
    assert rollups_match_the_samples(db_url) >= 20  # exact, whichever worker wrote a sample
    for worker in ingest:
        assert "Message queue is full" not in worker.log()
    nodes = {r["node"]: r for r in leader.cli("nodes")}
    assert {a.node for a in fleet} <= set(nodes)  # the leader knows them from node_live
    assert all(nodes[a.node]["last_seen"] is not None for a in fleet)
    assert "is offline" not in leader.log()  # stopped agents: not within 3 s of the end


@pg_only
async def test_a_slow_worker_loses_nothing_and_a_killed_one_is_recovered_by_resends(
    db_url, mosquitto, tmp_path
):
    group = f"g{uuid.uuid4().hex[:8]}"
    leader = process(
        db_url, mosquitto, tmp_path / "leader", "leader", group, DORMOUSE_RESEND_RETRY="3s"
    )
    leader.start()
    fast = process(db_url, mosquitto, tmp_path / "fast", "ingest", group)
    slow = process(
        db_url, mosquitto, tmp_path / "slow", "ingest", group, DORMOUSE_RECEIVE_MAXIMUM="40"
    )
    slow.prelude = SLOW_FLUSH
    fast.start()
    slow.start()
    fleet = start_agents(mosquitto, tmp_path, [1] * 8)
    try:
        await eventually(lambda: count_samples(db_url) >= 8 * 40, 60, "samples stored")

        def slow_stored() -> bool:
            return any(
                w["samples_stored"] > 0 and w["id"].endswith(f":{slow.process.pid}")
                for w in workers(leader).values()
            )

        await eventually(slow_stored, 30, "the slow worker storing its share")
        slow.kill()  # SIGKILL with up to 40 messages unacknowledged: Mosquitto drops them
        killed_at = count_samples(db_url)
        await eventually(lambda: count_samples(db_url) > killed_at + 8 * 20, 30, "more samples")
        await every_node_contiguous(db_url, fleet, 90)  # the agents resent what was lost
        stop_gracefully(fleet)
        found = await every_node_contiguous(db_url, fleet, 30)
        figures = leader.stats()
    finally:
        for agent in fleet:
            agent.kill()
        for one in (leader, fast, slow):
            one.kill()
    assert all(len(seqs) > 40 for seqs in found.values())
    assert figures["resends_sent"] >= 1  # the gap scan asked the agents again
    assert figures["seqs_lost"] == 0
    assert "Message queue is full" not in slow.log() + fast.log()
    assert "asked" in leader.log()


@pg_only
async def test_a_worker_with_a_slow_store_loses_nothing(db_url, mosquitto, tmp_path):
    """One worker whose store takes 0.4 s a write and who may hold 8 messages unacknowledged,
    six agents: every seq stored, no resend needed, nothing discarded on the way. (Mosquitto
    2.0.11 was seen sending past the receive maximum here, eclipse-mosquitto/mosquitto#2301:
    the worker then holds the excess in memory, unacknowledged, rather than drop it.)"""
    group = f"g{uuid.uuid4().hex[:8]}"
    leader = process(db_url, mosquitto, tmp_path / "leader", "leader", group)
    leader.start()
    slow = process(
        db_url, mosquitto, tmp_path / "slow", "ingest", group, DORMOUSE_RECEIVE_MAXIMUM="8"
    )
    slow.prelude = SLOW_FLUSH
    slow.start()
    fleet = start_agents(mosquitto, tmp_path, [1] * 6)
    try:
        await eventually(lambda: count_samples(db_url) > 0, 30, "the first samples")
        await asyncio.sleep(6)
        stop_gracefully(fleet)
        found = await every_node_contiguous(db_url, fleet, 120)

        def caught_up() -> dict | None:
            (row,) = [w for w in workers(leader).values() if w["role"] == "ingest"]
            return row if row["samples_stored"] == count_samples(db_url) else None

        await eventually(caught_up, 20, "the worker's figures written")
        figures = leader.stats()
    finally:
        for agent in fleet:
            agent.kill()
        for one in (leader, slow):
            one.kill()
    assert all(len(seqs) > 20 for seqs in found.values())
    assert figures["resends_sent"] == 0  # nothing was lost on the way
    assert figures["seqs_lost"] == 0
    assert "Message queue is full" not in slow.log()
