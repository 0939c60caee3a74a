"""Agent processes and a message collector for the integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt

from shared.codec import decode
from shared.config import BrokerUrl
from shared.messages import Status, TelemetryBatch
from shared.topics import Kind, parse_topic

KEY = "k" * 32


def unique_node() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@dataclass
class AgentProcess:
    node: str
    broker: BrokerUrl
    spool_dir: Path
    key_file: Path
    interval: str = "0.1s"
    process: subprocess.Popen[bytes] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    key: str | None = KEY  # None: no key file at all

    def start(self) -> None:
        if self.key is not None:
            self.key_file.write_text(self.key)
            self.key_file.chmod(0o600)
        env = {
            **os.environ,
            "DORMOUSE_COMMAND_KEY_FILE": str(self.key_file),
            "DORMOUSE_LOG_LEVEL": "debug",
            "DORMOUSE_JOBS_DIR": str(self.spool_dir.parent / "jobs"),
            **self.extra_env,
        }
        env.pop("DORMOUSE_CONFIG", None)
        log = (self.spool_dir.parent / f"{self.node}.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agent",
                "run",
                "--node",
                self.node,
                "--broker",
                f"mqtt://{self.broker.host}:{self.broker.port}",
                "--interval",
                self.interval,
                "--publish-interval",
                "0.2s",
                "--spool-dir",
                str(self.spool_dir),
            ],
            env=env,
            stdout=log,
            stderr=log,
        )

    def kill(self, signum: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)
            self.process.wait(timeout=30)  # the MQTT disconnect alone may take its 10 s timeout

    def log(self) -> str:
        return (self.spool_dir.parent / f"{self.node}.log").read_text(errors="replace")


@dataclass
class Collector:
    """Every message on one node's topics, decoded, gathered by a background task."""

    node: str
    telemetry: list[TelemetryBatch] = field(default_factory=list)
    statuses: list[tuple[Status, bool]] = field(default_factory=list)  # (status, retained)
    other: list[tuple[Kind, object, bool]] = field(default_factory=list)

    def add(self, message: aiomqtt.Message) -> None:
        parsed = parse_topic(message.topic.value)
        decoded = decode(message.payload, parsed.kind, parsed.node)
        if isinstance(decoded, TelemetryBatch):
            self.telemetry.append(decoded)
        elif isinstance(decoded, Status):
            self.statuses.append((decoded, bool(message.retain)))
        else:
            self.other.append((parsed.kind, decoded, bool(message.retain)))

    def seqs(self) -> set[int]:
        return {b.seq_first + i for b in self.telemetry for i in range(len(b.samples))}

    async def run(self, broker: BrokerUrl, **client_kw: object) -> None:
        async with aiomqtt.Client(broker.host, broker.port, **client_kw) as client:  # type: ignore[arg-type]
            await client.subscribe(f"dormouse/v1/nodes/{self.node}/#", qos=1)
            async for message in client.messages:
                if message.payload:
                    self.add(message)


async def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while not condition():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}") from None


async def clear_retained(broker: BrokerUrl, node: str) -> None:
    with contextlib.suppress(aiomqtt.MqttError):
        async with aiomqtt.Client(broker.host, broker.port) as client:
            for kind in (Kind.HELLO, Kind.STATUS):
                await client.publish(
                    f"dormouse/v1/nodes/{node}/{kind.value}", b"", qos=1, retain=True
                )
