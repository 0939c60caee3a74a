"""Fixtures for real services. Without a service a test skips with the reason; under CI=true
a missing service is a failure, because CI must exercise every integration test."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from shared.config import BrokerUrl, parse_broker_url

FIXTURES = Path(__file__).parent / "fixtures"


def missing_service(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def mqtt_url() -> BrokerUrl:
    """The shared test broker from DORMOUSE_TEST_MQTT."""
    url = os.environ.get("DORMOUSE_TEST_MQTT")
    if not url:
        missing_service("DORMOUSE_TEST_MQTT is not set (e.g. mqtt://127.0.0.1:1883)")
    broker = parse_broker_url(url)
    if not port_open(broker.host, broker.port):
        missing_service(f"no MQTT broker answers at {broker}")
    return broker


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The test PostgreSQL from DORMOUSE_TEST_PG, as a SQLAlchemy URL."""
    url = os.environ.get("DORMOUSE_TEST_PG")
    if not url:
        missing_service(
            "DORMOUSE_TEST_PG is not set (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
        )
    return url


def port_open(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Mosquitto:
    """A private broker on a free port that a test may stop and start again."""

    binary: str
    directory: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    queue: int = 1_000_000  # max_queued_messages: QoS 1 messages queued per client

    @property
    def url(self) -> BrokerUrl:
        return BrokerUrl(host="127.0.0.1", port=self.port)

    def start(self) -> None:
        conf = self.directory / "mosquitto.conf"
        template = (FIXTURES / "mosquitto.conf.in").read_text()
        user = getpass.getuser()
        conf.write_text(
            template.format(port=self.port, dir=self.directory, user=user, queue=self.queue)
        )
        self.process = subprocess.Popen([self.binary, "-c", str(conf)])
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", self.port, 0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.directory / "mosquitto.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"mosquitto did not start on {self.port}: {log}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: mosquitto saves its persistence file
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    binary = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()),
        None,
    )
    if binary is None:
        missing_service("the mosquitto binary is not installed (apt-get install mosquitto)")
    broker = Mosquitto(binary=binary, directory=tmp_path, port=free_port())
    broker.start()
    yield broker
    broker.stop()
