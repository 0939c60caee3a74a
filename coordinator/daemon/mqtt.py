"""The coordinator's MQTT session: connect with jittered backoff, subscribe for this
process's role, hand every message to the receiver with its acknowledgement, and lend the
connected client to the command sender.

MQTT 5 (`receive_maximum` > 0): paho's automatic PUBACK is off; the receiver acknowledges a
message once it is handled and, for telemetry, once its samples are committed. The broker
sends at most `receive_maximum` unacknowledged messages and queues the rest, so a process
that falls behind stops the flow instead of dropping what the broker counted delivered
(Mosquitto 2.0.11 overshoots that bound under steady traffic: docs/scale-out.md).

Sessions: `all` and `leader` keep a persistent session (the broker queues for them while
they restart); an ingest worker's is clean, so while it is gone the broker hands its share
to the other workers instead of queueing it for a session nobody reads. What a dying
worker held unacknowledged is dropped by Mosquitto (not resent to another member): the
leader's store-based gap scan asks the agents for it again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from coordinator.daemon.commands import CommandSender
from coordinator.daemon.writer import Ack
from coordinator.settings import ROLE_INGEST, ROLE_LEADER, CoordinatorConfig
from shared.backoff import Backoff
from shared.edge.tasks import Stopped, Stopping
from shared.topics import Kind, subscription

log = logging.getLogger(__name__)
Handler = Callable[[str, bytes, Ack | None], Awaitable[None]]
SESSION_KEPT_S = 0xFFFFFFFF  # MQTT 5: a persistent session never expires
V311_QUEUE = 50_000  # MQTT 3.1.1 only: messages held in memory before aiomqtt drops


def subscriptions(config: CoordinatorConfig) -> list[str]:
    """What this role reads: an ingest worker its share of telemetry (and every hello, to
    know nodes), the leader the rest (its telemetry comes from the store), `all` all."""
    if config.role == ROLE_INGEST:
        return [
            subscription(Kind.HELLO),
            subscription(Kind.TELEMETRY, group=config.share_group),
        ]
    kinds = [Kind.HELLO, Kind.STATUS, Kind.EVENTS]
    if config.role != ROLE_LEADER:
        kinds.insert(2, Kind.TELEMETRY)
    return [subscription(kind) for kind in kinds]


def client_id(config: CoordinatorConfig) -> str:
    """Ingest workers share one config, so each adds its host and pid to be distinct."""
    if config.role != ROLE_INGEST:
        return config.client_id
    return f"{config.client_id}-{socket.gethostname()}-{os.getpid()}"[:128]


def session_kwargs(config: CoordinatorConfig) -> dict[str, Any]:
    """aiomqtt.Client arguments for the protocol and session this role needs."""
    if config.receive_maximum == 0:
        return {"clean_session": False, "max_queued_incoming_messages": V311_QUEUE}
    properties = Properties(PacketTypes.CONNECT)
    properties.ReceiveMaximum = config.receive_maximum
    clean = config.role == ROLE_INGEST
    properties.SessionExpiryInterval = 0 if clean else SESSION_KEPT_S
    return {
        "protocol": aiomqtt.ProtocolVersion.V5,
        "clean_start": clean,
        "properties": properties,
    }


def acker(client: aiomqtt.Client, message: aiomqtt.Message) -> Ack | None:
    """The message's acknowledgement, sent later by whoever is done with it (QoS 0 and
    MQTT 3.1.1 messages need none from us). paho's `ack` is not wrapped by aiomqtt."""
    if message.qos == 0 or not client._client._manual_ack:
        return None
    paho, mid, qos = client._client, message.mid, message.qos

    def ack() -> None:
        paho.ack(mid, qos)  # a lost connection: nothing to do, the broker resends or drops

    return ack


READ_CHUNK = 256 * 1024


def buffer_reads(paho: mqtt.Client) -> None:
    """Read the socket in chunks and handle every whole packet they hold per wake-up.

    paho reads each packet in three or more `recv` calls (command byte, each length byte,
    body) and aiomqtt's reader handles one packet per readable event: at thousands of
    messages a second that is most of an ingest worker's CPU. Here `recv` takes what the
    socket has (up to 256 KiB) into a buffer the packet reads are served from, and a
    wake-up goes on reading while the buffer holds bytes (the socket will not wake us for
    them). paho's private `_sock_recv` and `loop_read` are replaced on this one client; a
    paho without them is left as it is."""
    recv, read = getattr(paho, "_sock_recv", None), getattr(paho, "loop_read", None)
    if recv is None or read is None:
        return
    buffered = bytearray()

    def sock_recv(size: int) -> bytes:
        if not buffered:
            buffered.extend(recv(READ_CHUNK))  # EAGAIN, a closed socket: as paho's own
        taken = bytes(buffered[:size])
        del buffered[:size]
        return taken

    def loop_read(max_packets: int = 1) -> MQTTErrorCode:
        rc = read(max_packets)
        while buffered and rc == MQTTErrorCode.MQTT_ERR_SUCCESS and paho.socket():
            rc = read(max_packets)
        return rc

    paho._sock_recv = sock_recv  # type: ignore[method-assign,assignment]
    paho.loop_read = loop_read  # type: ignore[method-assign]


class MqttLink:
    def __init__(
        self,
        config: CoordinatorConfig,
        sender: CommandSender,
        handle: Handler,
        stopping: Stopping,
    ) -> None:
        self._config, self._sender, self._handle = config, sender, handle
        self._stopping = stopping

    async def run(self) -> None:
        backoff, connected = Backoff(), None
        broker, name = self._config.broker, client_id(self._config)
        while True:
            try:
                client = aiomqtt.Client(
                    **broker.client_kwargs(self._config.mqtt),
                    **session_kwargs(self._config),
                    identifier=name,
                    keepalive=30,
                )
                # before CONNECT: a kept session's queued messages come right after CONNACK
                paho = client._client  # aiomqtt wraps neither manual acks nor reads
                paho.manual_ack_set(self._config.receive_maximum > 0)
                buffer_reads(paho)
                async with client:
                    self._sender.client = client
                    if connected is not True:
                        log.info("connected to %s as %s", broker, name)
                    connected = True
                    backoff.reset()
                    await self._read(client)
            except Stopped:
                return
            except aiomqtt.MqttError as exc:
                if self._stopping.requested:  # a disconnect that failed while cancelled
                    return
                if connected is not False:
                    log.warning("broker %s unreachable (%s): retrying", broker, exc)
                connected = False
            finally:
                self._sender.client = None
            await asyncio.sleep(backoff.next_delay())

    async def _read(self, client: aiomqtt.Client) -> None:
        for text in subscriptions(self._config):
            await client.subscribe(text, qos=1)
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            await self._handle(message.topic.value, payload, acker(client, message))
            self._stopping.check()  # a cancel a publish swallowed (Python 3.11)
