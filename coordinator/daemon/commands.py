"""Signed commands to agents: the one place that signs and publishes (`dispatch`, the power
loop and gap resends all send through it)."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Protocol

import aiomqtt

from coordinator.daemon.leadership import Leadership
from shared.clock import Clock
from shared.codec import encode
from shared.messages import Command, CommandBody
from shared.signing import sign
from shared.topics import Kind, topic

log = logging.getLogger(__name__)
COMMAND_TTL_S = 60.0


class Sender(Protocol):
    """What the parts that command agents need: False when it could not go now (no key, no
    broker); the caller tries again on a later pass. `unable` says why nothing can be signed
    (no key), so callers can hold work instead of sending into the void."""

    unable: str | None

    async def send(self, node: str, body: CommandBody) -> bool: ...


class CommandSender:
    def __init__(
        self, key: bytes | None, key_file: Path, clock: Clock, leadership: Leadership
    ) -> None:
        self._key, self._key_file, self._clock = key, key_file, clock
        self._leadership = leadership
        self.client: aiomqtt.Client | None = None  # set by the MQTT link while connected
        self._no_key_logged = False
        self.unable = None if key is not None else f"no command key at {key_file}"

    async def send(self, node: str, body: CommandBody) -> bool:
        if self._key is None:
            if not self._no_key_logged:
                log.error(
                    "no command key at %s: cannot send %s (or any) commands to agents "
                    "(`dormouse key generate`, then copy it to every agent)",
                    self._key_file,
                    body.OP,
                )
                self._no_key_logged = True
            return False
        if self.client is None or not self._leadership.leading.is_set():
            return False  # a standby commands nothing
        now = self._clock.now()
        command = Command(
            id=uuid.uuid4().hex,
            node=node,
            issued_at=now,
            expires_at=now + COMMAND_TTL_S,
            body=body,
            epoch=self._leadership.command_epoch,
        )
        try:
            await self.client.publish(
                topic(node, Kind.CMD), encode(sign(command, self._key)), qos=1
            )
        except aiomqtt.MqttError:
            return False
        return True
