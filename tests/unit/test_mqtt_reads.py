"""`buffer_reads`: the coordinator's paho client reads the socket in chunks and handles
every whole packet a wake-up brings, with real paho packets over a socket pair."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from coordinator.daemon.mqtt import buffer_reads


def publish_packet(topic: str, payload: bytes, mid: int) -> bytes:
    """A QoS 1 PUBLISH as a broker sends it (MQTT 3.1.1)."""
    name = topic.encode()
    body = len(name).to_bytes(2, "big") + name + mid.to_bytes(2, "big") + payload
    assert len(body) < 128  # one length byte
    return bytes([0x32, len(body)]) + body


@pytest.fixture
def link() -> Iterator[tuple[mqtt.Client, list[tuple[str, bytes]], socket.socket]]:
    """A paho client on one end of a socket pair (the broker's end is yielded), and the
    messages it hands over."""
    ours, broker = socket.socketpair()
    ours.setblocking(False)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="t")
    got: list[tuple[str, bytes]] = []
    client.on_message = lambda _c, _u, m: got.append((m.topic, bytes(m.payload)))
    client._sock = ours  # as paho holds it once connected
    yield client, got, broker
    broker.close()
    ours.close()


def test_one_wake_up_handles_every_whole_packet_and_keeps_a_partial_one(link):
    client, got, broker = link
    buffer_reads(client)
    packets = [publish_packet(f"t/{i}", b"x" * i, i + 1) for i in range(3)]
    stream = b"".join(packets)
    broker.sendall(stream[:-3])  # two whole packets and most of the third
    client.loop_read()
    assert got == [("t/0", b""), ("t/1", b"x")]
    broker.sendall(stream[-3:])
    client.loop_read()
    assert got[-1] == ("t/2", b"xx")


def test_without_it_paho_needs_a_wake_up_per_packet(link):
    """The peer: paho's own reads, one packet per `loop_read`."""
    client, got, broker = link
    broker.sendall(b"".join(publish_packet(f"t/{i}", b"", i + 1) for i in range(3)))
    client.loop_read()
    assert len(got) == 1


def test_a_closed_connection_is_reported_as_paho_reports_it(link):
    client, _, broker = link
    buffer_reads(client)
    client.loop_read()  # nothing to read yet: EAGAIN is success
    broker.close()
    assert client.loop_read() != mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
