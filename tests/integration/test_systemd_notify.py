"""The coordinator speaks sd_notify as `Type=notify` with `WatchdogSec=` expects: READY=1
once running, WATCHDOG=1 at least every half period, STOPPING=1 on SIGTERM."""

from __future__ import annotations

import signal
import socket
import time

import pytest

from tests.integration.coordinator_support import CoordinatorProcess

pytestmark = pytest.mark.mqtt


def test_coordinator_notifies_ready_watchdog_and_stopping(db_url, mosquitto, tmp_path):
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(20)
        coordinator = CoordinatorProcess(
            db_url=db_url,
            broker=mosquitto.url,
            workdir=tmp_path,
            extra_env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"},
        )
        coordinator.start()
        try:
            said, deadline = [], time.monotonic() + 20
            while said.count("WATCHDOG=1") < 3 and time.monotonic() < deadline:
                said.append(sock.recv(256).decode())
            assert said[0] == "READY=1"
            assert said.count("WATCHDOG=1") >= 3
            coordinator.kill(signal.SIGTERM)
            rest = []
            while "STOPPING=1" not in rest:
                rest.append(sock.recv(256).decode())
        finally:
            coordinator.kill()
