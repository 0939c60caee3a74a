"""Real NVML on a host with an NVIDIA GPU; skips cleanly anywhere else (CI included).

Run it on a GPU host with `pytest tests/gpu -s` and record what it prints in
docs/hardware.md.
"""

from __future__ import annotations

import time

import pynvml
import pytest

from agent.samplers.gpu import GpuSampler
from agent.sampling import take_sample
from shared.metrics import Scope, metrics_in

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def sampler():
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        pytest.skip(f"NVML unavailable on this host: {exc}")
    pynvml.nvmlShutdown()
    gpu = GpuSampler()
    yield gpu
    gpu.close()


def test_real_gpus_are_sampled(sampler):
    inventory = sampler.inventory()
    assert inventory, "NVML initialised but reports no GPUs"
    print(f"\n{sampler.check().detail}")
    first = take_sample([sampler], time.time())  # validates every value against the registry
    time.sleep(1.0)
    second = take_sample([sampler], time.time())
    for info, a, b in zip(inventory, first.gpus, second.gpus, strict=True):
        assert a.uuid == info.uuid
        print(
            f"GPU {info.index} {info.name} {info.uuid} mem {info.mem_total_bytes / 2**30:.1f} GiB"
        )
        for name, value in b.metrics.items():  # every field, the health ones included
            print(f"  {name:30s} {value}")
        print(f"  health: {b.health}{f' ({b.reason})' if b.reason else ''}")
        assert b.metrics.keys() == {m.name for m in metrics_in(Scope.GPU)}
        before, after = a.metrics["gpu_energy_j"], b.metrics["gpu_energy_j"]
        if before is not None and after is not None:
            assert after >= before, "the NVML energy counter went backwards"
            print(f"  energy over 1 s: {after - before:.1f} J")
