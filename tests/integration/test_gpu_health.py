"""GPU health and drains end to end: a real coordinator, real Mosquitto, both databases.

A publisher plays a two-GPU node whose agent judged GPU 0 failed: the coordinator logs the
change as an event, shows it, counts it on /metrics, and places a one-GPU job on GPU 1 and
never a two-GPU job; an operator's drain keeps a node's work away until undrained.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import aiomqtt
import pytest

from shared.codec import encode
from shared.messages import GpuInfo, GpuSample, Sample, TelemetryBatch
from shared.topics import Kind, topic
from tests import factories
from tests.integration.agent_support import unique_node
from tests.integration.coordinator_support import serving_metrics
from tests.integration.test_jobs import eventually, in_state, job, start_agents, submit
from tests.integration.test_metrics_http import free_port, scrape

pytestmark = pytest.mark.mqtt
REASON = "XID 79: fell off the bus"


@pytest.fixture
def coordinator(db_url, mosquitto, tmp_path):
    port = free_port()
    process = serving_metrics(db_url, mosquitto.url, tmp_path, port, DORMOUSE_OFFLINE_AFTER="60s")
    process.metrics_port = port
    process.start()
    yield process
    process.kill()


def sick_batch(node: str, seq: int) -> TelemetryBatch:
    gpus = (
        GpuSample(
            index=0, uuid="GPU-0", metrics={"gpu_xid_last": 79}, health="failed", reason=REASON
        ),
        GpuSample(index=1, uuid="GPU-1", metrics={"gpu_xid_last": 0}),
    )
    sample = Sample(ts=time.time(), metrics={"cpu_util_pct": 5.0}, gpus=gpus)
    return TelemetryBatch(node=node, seq_first=seq, samples=(sample,))


async def test_a_failed_gpu_is_an_event_and_never_gets_work(coordinator, mosquitto):
    node = unique_node()
    hello = replace(
        factories.hello(node),
        gpus=tuple(
            GpuInfo(index=i, uuid=f"GPU-{i}", name="NVIDIA H100", mem_total_bytes=80 * 2**30)
            for i in range(2)
        ),
    )
    async with aiomqtt.Client(mosquitto.url.host, mosquitto.url.port) as client:
        await client.publish(topic(node, Kind.HELLO), encode(hello), qos=1)
        await client.publish(topic(node, Kind.STATUS), encode(factories.status(node)), qos=1)
        await client.publish(topic(node, Kind.TELEMETRY), encode(sick_batch(node, 0)), qos=1)

        def shown():
            (row,) = [n for n in coordinator.cli("nodes") if n["node"] == node] or [None]
            return row is not None and row["gpus_failed"] == 1

        await eventually(shown, 30, "the failed GPU in `dormouse nodes`")
        detail = coordinator.cli("node", node)
        assert [(g["index"], g["health"], g["reason"]) for g in detail["gpu_health"]] == [
            (0, "failed", REASON),
            (1, "ok", ""),
        ]
        await eventually(
            lambda: coordinator.cli("node", node)["gpu_events"], 10, "the health event stored"
        )
        (event,) = coordinator.cli("node", node)["gpu_events"]
        assert (event["gpu_index"], event["kind"], event["reason"]) == (0, "failed", REASON)
        metrics = scrape(coordinator.metrics_port)
        labels = (("gpu", "0"), ("health", "failed"), ("node", node))
        assert metrics[("dormouse_gpu_unhealthy", labels)] == 1
        assert metrics[("dormouse_gpu_health_changes_total", (("health", "failed"),))] >= 1

        two = submit(coordinator, "--gpus", "2", "--", "true")
        one = submit(coordinator, "--gpus", "1", "--", "true")
        await eventually(in_state(coordinator, one, "placed", "running"), 20, "placed")
        placed = coordinator.cli("job", one)["job"]
        assert (placed["node"], placed["gpu_indices"]) == (node, [1])
        await asyncio.sleep(1.0)  # several passes
        assert job(coordinator, two)["state"] == "pending"


async def test_a_drained_node_gets_no_new_work_until_undrained(coordinator, mosquitto, tmp_path):
    (agent,) = start_agents(mosquitto, tmp_path, [2])
    try:
        await eventually(
            lambda: any(n["node"] == agent.node for n in coordinator.cli("nodes")), 30, "online"
        )
        drained = coordinator.run_cli("drain", agent.node, "--reason", "fan swap")
        assert drained.returncode == 0, drained.stderr
        await eventually(
            lambda: scrape(coordinator.metrics_port).get(
                ("dormouse_drained", (("gpu", "-1"), ("node", agent.node)))
            ),
            10,
            "the drain on /metrics",
        )
        waiting = submit(coordinator, "--cpus", "1", "--", "true")
        await asyncio.sleep(1.5)  # several passes
        assert job(coordinator, waiting)["state"] == "pending"
        assert coordinator.run_cli("undrain", agent.node).returncode == 0
        done = await eventually(in_state(coordinator, waiting, "succeeded"), 30, "the job ran")
        assert done["node"] == agent.node
    finally:
        agent.kill()
