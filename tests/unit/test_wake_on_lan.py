"""Wake-on-LAN on a real loopback UDP socket, and the dry-run agent's packet matching."""

from __future__ import annotations

import socket
from dataclasses import replace

import pytest

from agent.sleeper import magic_packet_for
from coordinator.daemon import wakers
from coordinator.settings import Power
from tests import factories

MAC = "52:54:00:ab:cd:ef"


@pytest.fixture
def listener():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


async def test_the_magic_packet_is_six_ff_then_sixteen_times_the_mac(listener):
    port = listener.getsockname()[1]
    hello = factories.hello("n1")
    hello = replace(hello, macs=(MAC,), wake_methods=("wol",))
    how = await wakers.wake(hello, Power(wol_broadcast="127.0.0.1", wol_port=port))
    data = listener.recv(1024)
    assert data == b"\xff" * 6 + bytes([0x52, 0x54, 0x00, 0xAB, 0xCD, 0xEF]) * 16
    assert len(data) == 102
    assert f"Wake-on-LAN to {MAC}" in how


def test_dry_run_agent_matches_only_its_own_mac():
    packet = b"\xff" * 6 + bytes.fromhex(MAC.replace(":", "")) * 16
    assert magic_packet_for(packet, ("02:00:00:00:00:01", MAC)) == MAC
    assert magic_packet_for(packet, ("02:00:00:00:00:01",)) is None
    assert magic_packet_for(packet[:-1], (MAC,)) is None
    assert magic_packet_for(b"\x00" + packet[1:], (MAC,)) is None


def test_wake_method_is_the_first_advertised_that_can_be_used():
    hello = factories.hello("n1")
    no_mac = replace(hello, macs=(), wake_methods=("wol", "ipmi", "command"))
    assert wakers.wake_method(no_mac, Power()) is None
    assert wakers.wake_method(no_mac, Power(wake_command="wake {node}")) == "command"
    assert wakers.wake_method(no_mac, Power(ipmi_command="ipmitool", wake_command="x")) == "ipmi"
    assert wakers.fill("ipmitool -H {node}-bmc power on", no_mac) == [
        "ipmitool",
        "-H",
        "n1-bmc",
        "power",
        "on",
    ]


async def test_a_wake_command_that_fails_says_why():
    hello = factories.hello("n1")
    hello = replace(hello, macs=(), wake_methods=("command",))
    config = Power(wake_command="sh -c 'echo no route to {node} >&2; exit 3'")
    with pytest.raises(OSError, match="exited 3: no route to n1"):
        await wakers.wake(hello, config)


def test_each_try_of_a_wake_takes_the_next_usable_method():
    """A wake tried again (Slurm recovery) goes round the node's usable methods."""
    hello = replace(factories.hello("n1"), macs=(MAC,), wake_methods=("wol", "ipmi", "command"))
    config = Power(ipmi_command="ipmitool -H {hostname} power on", wake_command="wake {node}")
    assert [wakers.wake_method(hello, config, t) for t in range(4)] == [
        "wol",
        "ipmi",
        "command",
        "wol",
    ]
    no_ipmi = Power(wake_command="wake {node}")
    assert [wakers.wake_method(hello, no_ipmi, t) for t in range(3)] == ["wol", "command", "wol"]
    assert wakers.wake_method(replace(hello, macs=()), Power(), 1) is None
