"""What the agent tells the coordinator about its host: the retained `hello`."""

from __future__ import annotations

import os
import socket

import psutil

from agent import __version__
from agent.settings import AgentConfig
from shared.messages import MAC_RE, GpuInfo, Hello


def mac_addresses() -> tuple[str, ...]:
    """Hardware addresses of the host's interfaces (loopback and all-zero ones left out),
    for Wake-on-LAN."""
    macs = set()
    for interface, addresses in psutil.net_if_addrs().items():
        for address in addresses:
            mac = address.address.lower().replace("-", ":")
            if (
                interface != "lo"
                and address.family == psutil.AF_LINK
                and MAC_RE.fullmatch(mac)
                and mac != "00:00:00:00:00:00"
            ):
                macs.add(mac)
    return tuple(sorted(macs))[:64]


def build_hello(
    config: AgentConfig,
    *,
    ts: float,
    mem_total_bytes: int,
    gpus: tuple[GpuInfo, ...],
    command_key: str,
) -> Hello:
    """`command_key`: the id of the key commands are verified with, "" when there is none
    (the coordinator then places nothing here and says why)."""
    return Hello(
        node=config.node,
        ts=ts,
        hostname=socket.gethostname()[:255],
        agent_version=__version__,
        cpus=config.offer_cpus or os.cpu_count() or 1,
        mem_total_bytes=max(1, config.offer_mem or mem_total_bytes),
        macs=config.macs or mac_addresses(),
        gpus=gpus,
        labels=config.labels,
        sleep_methods=(config.sleep_method,),
        wake_methods=config.wake_methods,
        command_key=command_key,
    )
