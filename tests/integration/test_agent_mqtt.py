"""A real agent process against a real Mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import aiomqtt
import pytest

from shared.codec import encode
from shared.messages import Command, Event, Hello, Resend, RunJob
from shared.signing import key_id, sign
from shared.topics import Kind, topic
from tests.integration.agent_support import (
    KEY,
    AgentProcess,
    Collector,
    clear_retained,
    unique_node,
    wait_until,
)

pytestmark = pytest.mark.mqtt


@pytest.fixture
async def agent(mqtt_url, tmp_path):
    process = AgentProcess(
        node=unique_node(), broker=mqtt_url, spool_dir=tmp_path / "spool", key_file=tmp_path / "key"
    )
    yield process
    process.kill()
    await clear_retained(mqtt_url, process.node)


@contextlib.asynccontextmanager
async def collecting(collector: Collector, broker, **kw):
    task = asyncio.create_task(collector.run(broker, **kw))
    await asyncio.sleep(0.3)  # subscribed before anything we wait for is published
    try:
        yield collector
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_hello_status_telemetry_and_last_will(agent, mqtt_url):
    live = Collector(agent.node)
    async with collecting(live, mqtt_url):
        agent.start()
        await wait_until(lambda: len(live.seqs()) >= 10, 20, "ten samples")
        late = Collector(agent.node)
        async with collecting(late, mqtt_url):
            await wait_until(lambda: late.statuses and late.other, 5, "retained hello and status")
        hello = next(m for kind, m, _ in late.other if kind is Kind.HELLO)
        assert isinstance(hello, Hello)
        assert hello.node == agent.node
        assert hello.cpus >= 1
        assert hello.mem_total_bytes > 0
        assert [(s.state, retained) for s, retained in late.statuses] == [("online", True)]
        seqs = live.seqs()
        assert seqs == set(range(min(seqs), max(seqs) + 1))  # contiguous from the stream start
        agent.kill(signal.SIGKILL)
        await wait_until(lambda: live.statuses[-1][0].state == "offline", 10, "the Last Will")


async def test_sigterm_says_offline(agent, mqtt_url):
    live = Collector(agent.node)
    async with collecting(live, mqtt_url):
        agent.start()
        await wait_until(live.seqs, 20, "telemetry")
        agent.kill(signal.SIGTERM)
        assert agent.process.returncode == 0, agent.log()
        await wait_until(lambda: live.statuses[-1][0].state == "offline", 5, "offline")


async def test_resend_is_served_from_the_spool_and_unsigned_commands_refused(agent, mqtt_url):
    live = Collector(agent.node)
    async with collecting(live, mqtt_url):
        agent.start()
        await wait_until(lambda: len(live.seqs()) >= 20, 20, "twenty samples")
        now = live.telemetry[-1].samples[-1].ts

        def resend(first: int, last: int, cid: str) -> Command:
            return Command(
                id=cid,
                node=agent.node,
                issued_at=now,
                expires_at=now + 60,
                body=Resend(from_seq=first, to_seq=last),
            )

        first = min(live.seqs())  # the spool's stream start (the clock in ms when made)
        seen_before = len(live.telemetry)  # later natural batches all start past first + 20
        async with aiomqtt.Client(mqtt_url.host, mqtt_url.port) as client:
            cmd = topic(agent.node, Kind.CMD)
            await client.publish(cmd, encode(resend(first, first + 1, "unsigned")), qos=1)
            signed = sign(resend(first + 3, first + 7, "signed"), KEY.encode())
            await client.publish(cmd, encode(signed), qos=1)

        def ranges() -> list[tuple[int, int]]:
            return [(b.seq_first - first, b.seq_last - first) for b in live.telemetry[seen_before:]]

        await wait_until(lambda: (3, 7) in ranges(), 10, "the resent range")
        assert (0, 1) not in ranges()

        def gone() -> list[tuple[int, int]]:
            return [
                (m.seq_first - first, m.seq_last - first)
                for kind, m, _ in live.other
                if kind is Kind.EVENTS and m.kind == "seqs_gone"
            ]

        async with aiomqtt.Client(mqtt_url.host, mqtt_url.port) as client:
            beyond = sign(resend(first - 5, first + 1, "beyond"), KEY.encode())
            await client.publish(topic(agent.node, Kind.CMD), encode(beyond), qos=1)
        await wait_until(lambda: gone() == [(-5, -1)], 10, "the agent's word on what it lacks")
        await wait_until(lambda: (0, 1) in ranges(), 10, "what it holds of that range, resent")
    assert "command refused (signature)" in agent.log()


async def test_a_broken_spool_is_moved_aside_and_the_agent_keeps_publishing(agent, mqtt_url):
    """`database disk image is malformed` / `file is not a database` used to end the agent in
    a traceback (systemd restarting it in a loop); now it publishes from a fresh spool."""
    agent.spool_dir.mkdir(parents=True)
    (agent.spool_dir / "spool.sqlite3").write_bytes(b"not a database " * 1000)
    live = Collector(agent.node)
    async with collecting(live, mqtt_url):
        agent.start()
        await wait_until(lambda: len(live.seqs()) >= 5, 20, "telemetry from a fresh spool")
    assert agent.process is not None
    assert agent.process.poll() is None, agent.log()
    (aside,) = agent.spool_dir.glob("spool.sqlite3.broken-*")
    assert f"moved to {aside}" in agent.log()
    assert "Traceback" not in agent.log()
    assert {b.stream_first for b in live.telemetry} == {min(live.seqs())}


@pytest.mark.parametrize("key", [None, "o" * 32])
async def test_an_agent_that_cannot_verify_says_so_in_its_hello_and_refuses_jobs_aloud(
    mqtt_url, tmp_path, key
):
    """Without the key (or with another) the hello carries "" (or that key's id, not
    the coordinator's), and a signed `run` comes back as a `command_refused` event with
    the job's id and the reason, for the coordinator to place it elsewhere."""
    agent = AgentProcess(
        node=unique_node(), broker=mqtt_url, spool_dir=tmp_path / "spool",
        key_file=tmp_path / "key", key=key,
    )  # fmt: skip
    live = Collector(agent.node)
    try:
        async with collecting(live, mqtt_url):
            agent.start()
            await wait_until(lambda: live.telemetry and live.other, 20, "hello and telemetry")
            hello = next(m for kind, m, _ in live.other if kind is Kind.HELLO)
            assert hello.command_key == ("" if key is None else key_id(key.encode()))
            assert hello.command_key != key_id(KEY.encode())
            now = live.telemetry[-1].samples[-1].ts
            run = Command(
                id="run-1", node=agent.node, issued_at=now, expires_at=now + 60,
                body=RunJob(job_id="j-refused", argv=("true",)),
            )  # fmt: skip
            async with aiomqtt.Client(mqtt_url.host, mqtt_url.port) as client:
                signed = encode(sign(run, KEY.encode()))
                await client.publish(topic(agent.node, Kind.CMD), signed, qos=1)

            def refusal() -> Event | None:
                events = [m for kind, m, _ in live.other if kind is Kind.EVENTS]
                return next((e for e in events if e.kind == "command_refused"), None)

            await wait_until(refusal, 10, "the refusal event")
        event = refusal()
        assert event.job_id == "j-refused"
        assert event.detail.startswith("no_key: no command key at" if key is None else "signature:")
    finally:
        agent.kill()
        await clear_retained(mqtt_url, agent.node)
