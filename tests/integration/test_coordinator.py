"""The coordinator end to end: real Mosquitto, real agents or publishers, both databases."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import re
import shutil
import signal
import sqlite3
import time
from pathlib import Path

import aiomqtt
import lz4.frame
import msgpack
import pytest

from coordinator.core.jobstate import JobRecord, JobState
from coordinator.core.nodestate import NodeState
from coordinator.core.registry import NodeView
from coordinator.services import nodes as node_service
from coordinator.store import jobs as job_rows
from coordinator.store import nodes as node_rows
from coordinator.store.engine import create_engine, upgrade
from shared.clock import SystemClock
from shared.codec import decode, encode, pack_map
from shared.messages import Command, Resend
from shared.signing import Verifier
from shared.topics import Kind, topic
from tests import factories
from tests.integration.agent_support import KEY, AgentProcess, unique_node
from tests.integration.coordinator_support import CoordinatorProcess, stored_seqs

pytestmark = pytest.mark.mqtt
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} [A-Z]+ ")
LEVEL = re.compile(r"\b(DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


@pytest.fixture
def coordinator(db_url, mosquitto, tmp_path):
    process = CoordinatorProcess(db_url=db_url, broker=mosquitto.url, workdir=tmp_path)
    process.start()
    yield process
    process.kill()
    records = [line for line in process.log().splitlines() if LEVEL.search(line)]
    assert records
    assert all(TIMESTAMP.match(line) for line in records), records[:3]  # issue 19, item 9
    assert not [line for line in records if " INFO alembic" in line]


def agents(mosquitto, tmp_path, count: int) -> list[AgentProcess]:
    made = []
    for _ in range(count):
        node = unique_node()
        made.append(
            AgentProcess(
                node=node,
                broker=mosquitto.url,
                interval="0.2s",
                spool_dir=tmp_path / node / "spool",
                key_file=tmp_path / "key",
            )
        )
        (tmp_path / node).mkdir()
    return made


async def eventually(check, timeout_s: float, what: str) -> None:
    async def ready() -> bool:
        return await asyncio.to_thread(check)

    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await ready():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        await asyncio.sleep(0.5)


async def test_three_agents_online_then_one_offline_and_history(
    coordinator, mosquitto, tmp_path, db_url
):
    fleet = agents(mosquitto, tmp_path, 3)
    try:
        for agent in fleet:
            agent.start()

        def states() -> dict[str, str]:
            return {row["node"]: row["state"] for row in coordinator.cli("nodes")}

        names = {a.node for a in fleet}
        await eventually(lambda: all(states().get(n) == "online" for n in names), 40, "online")
        fleet[0].kill(signal.SIGKILL)
        await eventually(lambda: states()[fleet[0].node] == "offline", 20, "offline")
        assert all(states()[a.node] == "online" for a in fleet[1:])
        points = coordinator.cli(
            "history",
            "--node",
            fleet[1].node,
            "--metric",
            "mem_used_bytes",
            "--since",
            "5m",
            "--step",
            "1s",
            "--format",
            "json",
        )
        assert points["points"], "history returned no points"
        assert all(p["value"] > 0 for p in points["points"])
        rows = {r["node"]: r for r in coordinator.cli("nodes")}
        assert rows[fleet[1].node]["mem_total_bytes"] > 0
    finally:
        for agent in fleet:
            agent.kill()
    assert coordinator.alive(), coordinator.log()


def hostile_payloads(node: str, other: str, count: int) -> list[tuple[str, bytes]]:
    """(topic, payload) of every kind the coordinator must drop and count."""
    rng = random.Random(7)
    good = pack_map(factories.telemetry(node=node, seq_first=0, count=1))
    wire = msgpack.unpackb(good)
    kinds = [
        lambda: rng.randbytes(rng.randint(0, 300)),
        lambda: lz4.frame.compress(b"\0" * (8 * 2**20)),  # bomb
        lambda: encode(factories.telemetry(node=other, seq_first=0, count=1)),  # wrong node
        lambda: lz4.frame.compress(msgpack.packb({**wire, "seq_first": "zero"})),
        lambda: lz4.frame.compress(
            msgpack.packb(
                {
                    **wire,
                    "samples": [{"ts": 1.0, "metrics": {"cpu_util_pct": math.nan}, "gpus": []}],
                }
            )
        ),
        lambda: lz4.frame.compress(msgpack.packb({**wire, "v": 2})),
        lambda: encode(factories.telemetry(node=node))[:-7],  # truncated
    ]
    return [(topic(node, Kind.TELEMETRY), kinds[i % len(kinds)]()) for i in range(count)]


async def test_hostile_payloads_are_counted_and_good_samples_all_stored(
    coordinator, mosquitto, db_url
):
    node, other = unique_node(), unique_node()
    hostile = hostile_payloads(node, other, 500)
    async with aiomqtt.Client(mosquitto.url.host, mosquitto.url.port) as client:
        await asyncio.sleep(2)  # the coordinator subscribes
        await client.publish(topic(node, Kind.HELLO), encode(factories.hello(node)), qos=1)
        now = time.time()
        for i in range(100):
            batch = factories.telemetry(node=node, seq_first=5 * i, count=5, ts=now - 600 + 5 * i)
            await client.publish(topic(node, Kind.TELEMETRY), encode(batch), qos=1)
            for topic_name, payload in hostile[5 * i : 5 * i + 5]:
                await client.publish(topic_name, payload, qos=1)
    await eventually(lambda: len(stored_seqs(db_url, node)) == 500, 30, "500 good samples")
    await eventually(
        lambda: sum(v for k, v in coordinator.stats().items() if k.startswith("dropped_")) == 500,
        20,
        "500 counted drops",
    )
    stats = coordinator.stats()
    assert stats["dropped_node_mismatch"] > 0
    assert stats["dropped_too_large"] > 0
    assert stored_seqs(db_url, node) == list(range(500))
    assert coordinator.alive(), coordinator.log()
    drop_lines = [line for line in coordinator.log().splitlines() if "dropped" in line]
    assert 0 < len(drop_lines) < 50  # rate-limited: a line per reason per 10 s, not 500


async def test_duplicates_are_stored_once_and_gaps_are_asked_for(coordinator, mosquitto, db_url):
    node = unique_node()
    verifier = Verifier(KEY.encode(), node, SystemClock())
    async with (
        aiomqtt.Client(mosquitto.url.host, mosquitto.url.port) as agent,
        aiomqtt.Client(mosquitto.url.host, mosquitto.url.port) as out,
    ):
        await agent.subscribe(topic(node, Kind.CMD), qos=1)
        await asyncio.sleep(2)
        await out.publish(topic(node, Kind.HELLO), encode(factories.hello(node)), qos=1)
        now = time.time()

        async def send(first: int, count: int) -> None:
            batch = factories.telemetry(node=node, seq_first=first, count=count, ts=now + first)
            await out.publish(topic(node, Kind.TELEMETRY), encode(batch), qos=1)

        await send(0, 5)
        await send(0, 5)  # redelivered
        await send(10, 5)  # 5..9 missing
        async with asyncio.timeout(15):
            message = await anext(aiter(agent.messages))
        command = verifier.verify(decode(message.payload, Kind.CMD, node))
        assert isinstance(command, Command)
        assert command.body == Resend(from_seq=5, to_seq=9)
        await send(5, 5)  # what the agent's spool would serve
    await eventually(lambda: stored_seqs(db_url, node) == list(range(15)), 20, "gap filled")

    def counted() -> bool:  # the figures are written every few seconds: wait for both
        stats = coordinator.stats()
        return stats.get("duplicates") == 5 and stats.get("samples_stored") == 15

    await eventually(counted, 20, "5 duplicates and 15 rows (not 20 deliveries) counted")


async def test_coordinator_killed_mid_stream_loses_and_doubles_nothing(
    coordinator, mosquitto, tmp_path, db_url
):
    fleet = agents(mosquitto, tmp_path, 2)
    try:
        for agent in fleet:
            agent.start()
        await eventually(
            lambda: all(len(stored_seqs(db_url, a.node)) > 20 for a in fleet), 40, "samples stored"
        )
        coordinator.kill(signal.SIGKILL)
        await asyncio.sleep(3)
        coordinator.start()
        await asyncio.sleep(8)
        for agent in fleet:
            agent.kill(signal.SIGTERM)  # stop producing; what was sent must all be stored
        highest = {}
        for agent in fleet:
            spool = agent.spool_dir / "spool.sqlite3"
            with contextlib.closing(sqlite3.connect(spool)) as db:
                highest[agent.node] = db.execute(
                    "SELECT max(seq) FROM samples WHERE sent_at IS NOT NULL"
                ).fetchone()[0]

        def complete() -> bool:
            """Every seq the spool marked sent is stored once. A batch may also be stored whose
            PUBACK came as the agent stopped, before it marked it sent: contiguous still."""
            stored = {n: stored_seqs(db_url, n) for n in highest}
            return all(
                seqs
                and seqs[-1] >= highest[n]
                and seqs == list(range(seqs[0], seqs[0] + len(seqs)))
                for n, seqs in stored.items()
            )

        await eventually(complete, 45, "every sent seq stored exactly once")
    finally:
        for agent in fleet:
            agent.kill()
    assert coordinator.alive(), coordinator.log()


def sent_seqs(spool_dir: Path) -> list[int]:
    """What the agent's spool holds as sent (the broker acknowledged it); the rest waits in
    the spool for the agent's next start."""
    with contextlib.closing(sqlite3.connect(spool_dir / "spool.sqlite3")) as db:
        rows = db.execute("SELECT seq FROM samples WHERE sent_at IS NOT NULL ORDER BY seq")
        return [int(r[0]) for r in rows]


@pytest.mark.parametrize("how", ["deleted", "emptied"])
async def test_a_lost_spool_loses_nothing_measured_after_it(
    coordinator, mosquitto, tmp_path, db_url, how
):
    """Stop an agent, delete its spool (or leave a zero-length file), start it again: every
    sample it measures afterwards is stored, and the reset is counted and logged."""
    (agent,) = agents(mosquitto, tmp_path, 1)
    try:
        agent.start()
        await eventually(lambda: len(stored_seqs(db_url, agent.node)) > 10, 40, "first samples")
        agent.kill(signal.SIGTERM)
        old_high = max(stored_seqs(db_url, agent.node))
        shutil.rmtree(agent.spool_dir)
        if how == "emptied":
            agent.spool_dir.mkdir()
            (agent.spool_dir / "spool.sqlite3").touch()
        agent.start()

        def new_stream() -> list[int]:
            return [s for s in stored_seqs(db_url, agent.node) if s > old_high]

        await eventually(lambda: len(new_stream()) >= 15, 40, "samples of the new spool")
        agent.kill(signal.SIGTERM)
        measured = sent_seqs(agent.spool_dir)
        assert min(measured) > old_high  # the new spool's seqs start above the old ones
        await eventually(lambda: set(measured) <= set(new_stream()), 30, "every sample stored")
        assert measured  # (15 or more are stored: the last few may await their PUBACK)
    finally:
        agent.kill()
    await eventually(  # status figures are written by housekeeping, a moment later
        lambda: coordinator.stats().get("stream_resets") == 1, 20, "the reset counted"
    )
    events = coordinator.cli("power-events", "--node", agent.node)
    assert [e["kind"] for e in events].count("stream_reset") == 1
    assert "new sample stream" in coordinator.log()


async def test_plausible_but_wrong_data_is_refused_counted_and_not_stored(
    coordinator, mosquitto, db_url
):
    """Year-5137 and 1970 stamps, a seq near 2**63, and names that never said hello: each
    counted by reason; none reaches the samples or nodes tables."""
    node = unique_node()
    forged = [f"forged-{unique_node()}" for _ in range(200)]
    async with aiomqtt.Client(mosquitto.url.host, mosquitto.url.port) as client:
        await asyncio.sleep(2)  # the coordinator subscribes
        for name in forged:
            batch = factories.telemetry(node=name, seq_first=0, count=1, ts=time.time())
            await client.publish(topic(name, Kind.TELEMETRY), encode(batch), qos=1)
        await client.publish(topic(node, Kind.HELLO), encode(factories.hello(node)), qos=1)
        now = time.time()
        for batch in (
            factories.telemetry(node=node, seq_first=0, count=3, ts=now),
            factories.telemetry(node=node, seq_first=3, count=1, ts=99_999_999_999.0),
            factories.telemetry(node=node, seq_first=4, count=1, ts=1.0),
            factories.telemetry(node=node, seq_first=2**63 - 10, count=2, ts=now),
        ):
            await client.publish(topic(node, Kind.TELEMETRY), encode(batch), qos=1)
    expected = {
        "dropped_unknown_node": 200,
        "dropped_future_ts": 1,
        "dropped_too_old": 1,
        "dropped_seq_jump": 1,
    }

    def counted() -> bool:
        stats = coordinator.stats()
        return all(stats.get(k) == v for k, v in expected.items())

    await eventually(counted, 30, f"drops counted as {expected}")
    assert stored_seqs(db_url, node) == [0, 1, 2]
    known = {row["node"] for row in coordinator.cli("nodes")}
    assert node in known
    assert not known & set(forged)
    assert coordinator.alive(), coordinator.log()


async def test_forgetting_forged_nodes_frees_max_nodes_for_a_real_one(db_url, mosquitto, tmp_path):
    """Forged hellos fill `max_nodes` (3) and a real agent's samples are dropped; `dormouse
    nodes forget` removes the forged ones from the store and from the running coordinator's
    memory, and the real node is taken: stored and listed, the forged ones never again."""
    coordinator = CoordinatorProcess(
        db_url=db_url, broker=mosquitto.url, workdir=tmp_path,
        extra_env={"DORMOUSE_MAX_NODES": "3"},
    )  # fmt: skip
    coordinator.start()
    forged = [unique_node() for _ in range(3)]
    (real,) = agents(mosquitto, tmp_path, 1)
    try:
        async with aiomqtt.Client(mosquitto.url.host, mosquitto.url.port) as client:
            for name in forged:
                await client.publish(topic(name, Kind.HELLO), encode(factories.hello(name)), qos=1)

        def listed() -> set[str]:
            return {row["node"] for row in coordinator.cli("nodes")}

        await eventually(lambda: listed() == set(forged), 20, "the forged nodes stored")
        real.start()
        await eventually(
            lambda: coordinator.stats().get("dropped_max_nodes", 0) > 0, 30, "max_nodes hit"
        )
        done = coordinator.run_cli("nodes", "forget", "--json", *forged)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"forgotten": sorted(forged), "refused": {}}
        await eventually(lambda: "forgot node" in coordinator.log(), 10, "the forget applied")
        real.kill(signal.SIGTERM)  # its hello was refused: the agent says it again on connect
        real.start()
        await eventually(lambda: listed() == {real.node}, 30, "the real node taken")
        await eventually(lambda: len(stored_seqs(db_url, real.node)) > 5, 30, "its samples")
        await asyncio.sleep(3)  # several passes: no forged row is written back
        assert listed() == {real.node}
    finally:
        real.kill()
        coordinator.kill()


def test_a_node_with_a_job_on_it_is_not_forgotten(db_url, tmp_path):
    engine = create_engine(db_url)
    upgrade(engine)
    views = [
        NodeView(name=n, state=NodeState.ONLINE, state_since=0.0, last_seen=seen)
        for n, seen in (("busy", 100.0), ("idle", 100.0), ("gone", 10.0))
    ]
    running = JobRecord(
        id="j1", argv=("true",), submitted_at=50.0, state=JobState.RUNNING, node="busy"
    )
    with engine.begin() as conn:
        node_rows.save_nodes(conn, views)
        job_rows.insert(conn, running, 50.0)
    done = node_service.forget(engine, ["busy", "idle"], stale_s=60.0, now=120.0)
    assert done.forgotten == ["gone", "idle"]  # gone: unheard for 110 s > 60 s
    assert done.refused == {"busy": "a job is placed or running on it"}
    with engine.connect() as conn:
        assert node_rows.known_nodes(conn) == ["busy"]
        assert [n for n, _ in node_rows.forgets_since(conn, 0.0)] == ["gone", "idle"]
    with pytest.raises(node_service.UnknownNode, match="unknown node 'nope'"):
        node_service.forget(engine, ["nope"], None, 130.0)
    engine.dispose()
