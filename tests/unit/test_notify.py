"""sd_notify over a real unix datagram socket."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from shared.edge.notify import Notifier


@pytest.fixture
def listener(tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    yield str(path), sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    messages = []
    try:
        while True:
            messages.append(sock.recv(1024).decode())
    except TimeoutError:
        return messages


def test_ready_once_and_watchdog_at_half_the_period(listener):
    path, sock = listener
    now = [0.0]
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"}, lambda: now[0])
    notifier.ready()
    notifier.ready()
    for t in (0.0, 0.5, 1.0, 1.5, 2.0):  # period 2 s: a ping at most every 1 s
        now[0] = t
        notifier.watchdog()
    notifier.stopping()
    assert received(sock) == ["READY=1", "WATCHDOG=1", "WATCHDOG=1", "WATCHDOG=1", "STOPPING=1"]


def test_no_watchdog_when_not_asked_or_for_another_pid(listener):
    path, sock = listener
    Notifier({"NOTIFY_SOCKET": path}).watchdog()
    other_pid = str(os.getpid() + 1)
    Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000", "WATCHDOG_PID": other_pid}).watchdog()
    assert received(sock) == []


def test_abstract_socket_address():
    name = f"dormouse-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(1)
        Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert sock.recv(64) == b"READY=1"


def test_without_systemd_nothing_is_sent():
    Notifier({}).ready()  # no socket: must not raise
