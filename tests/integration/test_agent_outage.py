"""Nothing is lost across a broker outage, even when the agent is killed during it.

A private Mosquitto (persistence on) is stopped for 20 s while an agent samples at 10 Hz;
a persistent-session subscriber must then see every seq from the first to the last, including the
samples taken while the broker was down.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import defaultdict

import aiomqtt
import pytest

from tests.integration.agent_support import AgentProcess, Collector, unique_node, wait_until

pytestmark = pytest.mark.mqtt
OUTAGE_S = 20.0


async def collect(collector: Collector, broker, sub_id: str) -> None:
    """Gather until the broker goes away (or the task is cancelled)."""
    with contextlib.suppress(aiomqtt.MqttError):
        await collector.run(broker, identifier=sub_id, clean_session=False)


async def outage(mosquitto, tmp_path, *, kill_agent_midway: bool) -> None:
    node, sub_id = unique_node(), f"sub-{unique_node()}"
    collector = Collector(node)
    agent = AgentProcess(
        node=node, broker=mosquitto.url, spool_dir=tmp_path / "spool", key_file=tmp_path / "key"
    )
    before = asyncio.create_task(collect(collector, mosquitto.url, sub_id))
    await asyncio.sleep(0.3)
    agent.start()
    try:
        await wait_until(lambda: len(collector.seqs()) >= 20, 20, "samples before the outage")
        started = time.time()
        mosquitto.stop()
        await before
        if kill_agent_midway:
            await asyncio.sleep(OUTAGE_S / 2)
            agent.kill(signal.SIGKILL)
            agent.start()  # the same spool, a new stream: nothing is reused
            await asyncio.sleep(OUTAGE_S / 2)
        else:
            await asyncio.sleep(OUTAGE_S)
        ended = time.time()
        mosquitto.start()
        after = asyncio.create_task(collect(collector, mosquitto.url, sub_id))

        def caught_up() -> bool:
            return any(s.ts > ended + 1 for b in collector.telemetry for s in b.samples)

        await wait_until(caught_up, 60, "samples from after the outage")  # backoff ≤ 30 s
        after.cancel()
    finally:
        agent.kill(signal.SIGKILL)

    streams: dict[int, set[int]] = defaultdict(set)
    for batch in collector.telemetry:
        streams[batch.stream_first] |= set(range(batch.seq_first, batch.seq_last + 1))
    # killed, the agent numbers on in a new stream above every seq it may have sent
    assert len(streams) == (2 if kill_agent_midway else 1), sorted(streams)
    for stream, seqs in streams.items():
        missing = sorted(set(range(min(seqs), max(seqs) + 1)) - seqs)
        assert missing == [], f"{len(missing)} seqs of stream {stream} never arrived"
    if kill_agent_midway:
        old, new = sorted(streams)
        assert min(streams[new]) == new > max(streams[old])
    timestamps: dict[int, set[float]] = defaultdict(set)
    for batch in collector.telemetry:
        for i, sample in enumerate(batch.samples):
            timestamps[batch.seq_first + i].add(sample.ts)
    assert all(len(ts) == 1 for ts in timestamps.values()), "a seq was reused"
    during = [t for ts in timestamps.values() for t in ts if started + 1 < t < ended - 1]
    sampling_s = (OUTAGE_S - 2) - (2 if kill_agent_midway else 0)  # a restart costs ~1-2 s
    assert len(during) >= 10 * sampling_s * 0.5, "sampling did not go on during the outage"


async def test_broker_outage_loses_nothing(mosquitto, tmp_path):
    await outage(mosquitto, tmp_path, kill_agent_midway=False)


async def test_broker_outage_with_agent_killed_and_restarted(mosquitto, tmp_path):
    await outage(mosquitto, tmp_path, kill_agent_midway=True)
