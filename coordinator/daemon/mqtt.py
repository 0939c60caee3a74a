"""The coordinator's MQTT session: connect with jittered backoff, subscribe, hand every
message to the receiver, and lend the connected client to the command sender."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiomqtt

from coordinator.daemon.commands import CommandSender
from coordinator.settings import CoordinatorConfig
from shared.backoff import Backoff
from shared.edge.tasks import Stopped, Stopping
from shared.topics import Kind, subscription

log = logging.getLogger(__name__)
Handler = Callable[[str, bytes], Awaitable[None]]
SUBSCRIBED = (Kind.HELLO, Kind.STATUS, Kind.TELEMETRY, Kind.EVENTS)


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
        broker = self._config.broker
        while True:
            try:
                async with aiomqtt.Client(
                    **broker.client_kwargs(self._config.mqtt),
                    identifier=self._config.client_id,
                    clean_session=False,
                    keepalive=30,
                    max_queued_incoming_messages=50_000,
                ) as client:
                    self._sender.client = client
                    if connected is not True:
                        log.info("connected to %s as %s", broker, self._config.client_id)
                    connected = True
                    backoff.reset()
                    for kind in SUBSCRIBED:
                        await client.subscribe(subscription(kind), qos=1)
                    async for message in client.messages:
                        payload = message.payload if isinstance(message.payload, bytes) else b""
                        await self._handle(message.topic.value, payload)
                        self._stopping.check()  # a cancel a publish swallowed (Python 3.11)
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
