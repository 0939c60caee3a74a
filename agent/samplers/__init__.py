"""The samplers, registered explicitly in one list (as node_exporter registers collectors)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.samplers.base import Availability, Reading, Sampler
from agent.samplers.connections import ConnectionsSampler
from agent.samplers.cpu import CpuSampler
from agent.samplers.gpu import GpuSampler
from agent.samplers.jobs import JobsSampler
from agent.samplers.memory import MemorySampler
from agent.samplers.rapl import RaplSampler
from agent.samplers.simulated_cpu import SimulatedCpuSampler
from agent.samplers.spool import SpoolSampler

__all__ = ["Availability", "Reading", "Sampler", "build_samplers"]


def build_samplers(
    *,
    service_ports: tuple[int, ...],
    jobs_running: Callable[[], int],
    spool_held: Callable[[], int] = lambda: 0,
    proc_root: Path = Path("/proc"),
    sys_root: Path = Path("/sys"),
    nvml: Any = None,
    simulated_load: bool = False,
) -> list[Sampler]:
    """`simulated_load`: one of several demo/test nodes on one host. Its CPU follows its own
    jobs, and it has none of the host's GPUs or power sensors: every simulated node would
    otherwise offer the same GPUs to jobs and count the same joules."""
    if simulated_load:
        cpu: Sampler = SimulatedCpuSampler(jobs_running)
        hardware: list[Sampler] = []
    else:
        cpu = CpuSampler(proc_root, sys_root)
        hardware = [GpuSampler(nvml), RaplSampler(sys_root)]
    return [
        cpu,
        MemorySampler(proc_root),
        *hardware,
        ConnectionsSampler(service_ports, proc_root),
        JobsSampler(jobs_running),
        SpoolSampler(spool_held),
    ]
