"""The agent's sleep methods at the subprocess edge (no host is suspended here): the
command each runs, and resume detection by the jump of CLOCK_BOOTTIME over MONOTONIC."""

from __future__ import annotations

import asyncio
import socket

import psutil
import pytest

from agent import sleeper
from agent.settings import AgentConfig
from agent.sleeper import Sleeper, SleepFailed

MAC = "02:00:00:00:00:07"


@pytest.mark.parametrize(
    ("settings", "argv"),
    [
        ({"sleep_method": "systemctl-suspend"}, ["systemctl", "suspend"]),
        (
            {"sleep_method": "rtcwake", "rtcwake_after": 600.0},
            ["rtcwake", "-m", "mem", "-s", "600"],
        ),
        (
            {"sleep_method": "command", "sleep_command": "pm-suspend --quirk 'a b'"},
            ["pm-suspend", "--quirk", "a b"],
        ),
        ({"sleep_method": "dry-run"}, None),
    ],
)
def test_each_method_runs_its_command(settings, argv):
    assert Sleeper(AgentConfig(**settings), (MAC,)).command() == argv


async def test_a_command_sleep_returns_when_the_host_has_been_suspended(monkeypatch):
    suspended = iter([10.0, 10.0, 10.2, 45.0])  # before, then polls: the host slept 35 s
    monkeypatch.setattr(sleeper, "suspended_s", lambda: next(suspended))
    monkeypatch.setattr(sleeper, "POLL_S", 0.01)
    how = await Sleeper(AgentConfig(sleep_method="command", sleep_command="true"), ()).sleep()
    assert how == "resumed after 35s suspended"


async def test_a_host_that_never_suspends_is_reported(monkeypatch):
    monkeypatch.setattr(sleeper, "suspended_s", lambda: 10.0)
    monkeypatch.setattr(sleeper, "POLL_S", 0.01)
    monkeypatch.setattr(sleeper, "SUSPEND_WAIT_S", 0.05)
    with pytest.raises(SleepFailed, match="did not suspend"):
        await Sleeper(AgentConfig(sleep_method="command", sleep_command="true"), ()).sleep()


@pytest.mark.parametrize(
    ("command", "reason"),
    [("false", "exited 1"), ("/no/such/suspend", "No such file"), ("", "sleep_command is empty")],
)
async def test_a_failing_sleep_command_says_why(command, reason):
    config = AgentConfig(sleep_method="command", sleep_command=command)
    with pytest.raises(SleepFailed, match=reason):
        await Sleeper(config, ()).sleep()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_dry_run_sleeps_until_a_packet_for_its_own_mac():
    port = free_port()
    config = AgentConfig(sleep_method="dry-run", wol_listen_port=port, dry_run_max=10.0)
    task = asyncio.create_task(Sleeper(config, (MAC,)).sleep())
    await asyncio.sleep(0.2)
    target = ("127.255.255.255", port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        other = b"\xff" * 6 + bytes.fromhex("020000000008") * 16
        sender.sendto(other, target)  # another node's packet: still asleep
        await asyncio.sleep(0.2)
        assert not task.done()
        sender.sendto(b"\xff" * 6 + bytes.fromhex(MAC.replace(":", "")) * 16, target)
    assert await asyncio.wait_for(task, 5) == f"Wake-on-LAN packet for {MAC}"


async def test_an_asleep_dry_run_agent_listens_on_loopback_broadcast_only():
    config = AgentConfig(sleep_method="dry-run", wol_listen_port=free_port(), dry_run_max=5.0)
    task = asyncio.create_task(Sleeper(config, (MAC,)).sleep())
    await asyncio.sleep(0.2)
    bound = [
        c.laddr for c in psutil.Process().net_connections(kind="udp")
        if c.laddr and c.laddr.port == config.wol_listen_port
    ]  # fmt: skip
    task.cancel()
    assert [address.ip for address in bound] == ["127.255.255.255"]


async def test_dry_run_wakes_by_itself_after_dry_run_max():
    config = AgentConfig(sleep_method="dry-run", wol_listen_port=free_port(), dry_run_max=0.2)
    assert "woke by itself" in await Sleeper(config, (MAC,)).sleep()
