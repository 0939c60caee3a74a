"""A simulated node's CPU follows its own jobs, whatever the host is doing."""

from __future__ import annotations

from agent.samplers import build_samplers
from agent.samplers.cpu import CpuSampler
from agent.samplers.simulated_cpu import SimulatedCpuSampler
from coordinator.power.policy import PowerPolicy


def test_busy_with_a_job_idle_without():
    running = [0]
    sampler = SimulatedCpuSampler(lambda: running[0])
    idle = sampler.sample().metrics["cpu_util_pct"]
    running[0] = 1
    busy = sampler.sample().metrics["cpu_util_pct"]
    assert busy == 100.0
    assert isinstance(idle, float)
    assert idle < PowerPolicy().cpu_idle_pct  # the default threshold sees it idle
    assert sampler.check().ok


def test_the_setting_swaps_the_cpu_sampler_and_leaves_the_hosts_hardware_out():
    """Four simulated nodes on a GPU host must not offer its GPUs four times (seen on an
    H100 demo run: every simulated node reported the host's GPU and 70 W)."""
    real = build_samplers(service_ports=(), jobs_running=lambda: 0)
    simulated = build_samplers(service_ports=(), jobs_running=lambda: 0, simulated_load=True)
    assert isinstance(real[0], CpuSampler)
    assert isinstance(simulated[0], SimulatedCpuSampler)
    assert [s.name for s in real if s.name not in {"gpu", "power"}] == [s.name for s in simulated]
    assert {"gpu", "power"} <= {s.name for s in real}
