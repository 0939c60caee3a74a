"""Encoded messages through a real Mosquitto with aiomqtt."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import aiomqtt
import pytest

from shared.codec import decode, encode
from shared.topics import Kind, parse_topic, subscription, topic
from tests import factories

pytestmark = pytest.mark.mqtt


def unique_node() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def client(url, **kw) -> aiomqtt.Client:
    return aiomqtt.Client(url.host, url.port, **kw)


async def receive(sub: aiomqtt.Client, count: int, timeout_s: float) -> list[aiomqtt.Message]:
    """Up to `count` messages; fewer if `timeout_s` passes first (the caller's assert says)."""
    got: list[aiomqtt.Message] = []

    async def collect() -> None:
        async for message in sub.messages:
            got.append(message)
            if len(got) == count:
                return

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(collect(), timeout_s)
    return got


async def test_telemetry_batch_round_trip(mqtt_url):
    node = unique_node()
    batch = factories.telemetry(node=node, count=5)
    async with client(mqtt_url) as sub, client(mqtt_url) as pub:
        await sub.subscribe(subscription(Kind.TELEMETRY, node=node), qos=1)
        await pub.publish(topic(node, Kind.TELEMETRY), encode(batch), qos=1)
        (message,) = await receive(sub, 1, 10)
    parsed = parse_topic(message.topic.value)
    assert parsed.node == node
    assert decode(message.payload, parsed.kind, parsed.node) == batch


async def test_retained_hello_reaches_a_late_subscriber(mqtt_url):
    node = unique_node()
    hello = factories.hello(node)
    async with client(mqtt_url) as pub:
        await pub.publish(topic(node, Kind.HELLO), encode(hello), qos=1, retain=True)
    try:
        async with client(mqtt_url) as sub:
            await sub.subscribe(subscription(Kind.HELLO, node=node), qos=1)
            (message,) = await receive(sub, 1, 10)
        assert message.retain
        assert decode(message.payload, Kind.HELLO, node) == hello
    finally:
        async with client(mqtt_url) as pub:  # an empty retained message clears it
            await pub.publish(topic(node, Kind.HELLO), b"", qos=1, retain=True)


async def test_queued_batches_survive_a_broker_restart(mosquitto):
    """More QoS 1 batches than Mosquitto's default queue (1000) wait for an offline
    subscriber across a broker restart: the test config raises the cap and persists."""
    node, count, sub_id = unique_node(), 2000, f"sub-{uuid.uuid4().hex[:8]}"
    async with client(mosquitto.url, identifier=sub_id, clean_session=False) as sub:
        await sub.subscribe(subscription(Kind.TELEMETRY, node=node), qos=1)
    async with client(mosquitto.url) as pub:
        for seq in range(count):
            batch = factories.telemetry(node=node, seq_first=seq, count=1)
            await pub.publish(topic(node, Kind.TELEMETRY), encode(batch), qos=1)
    mosquitto.stop()
    mosquitto.start()
    async with client(mosquitto.url, identifier=sub_id, clean_session=False) as sub:
        messages = await receive(sub, count, 30)
    seqs = {decode(m.payload, Kind.TELEMETRY, node).seq_first for m in messages}
    assert sorted(set(range(count)) - seqs)[:5] == []
