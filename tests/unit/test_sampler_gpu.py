from __future__ import annotations

import logging

import pynvml

from agent.samplers.gpu import GpuSampler
from tests.unit.samplers_support import FakeGpu, FakeNvml


def test_every_field_in_metric_units():
    nvml = FakeNvml([FakeGpu("GPU-a"), FakeGpu("GPU-b", util=(5, 1))])
    gpus = GpuSampler(nvml).sample().gpus
    assert [(g.index, g.uuid) for g in gpus] == [(0, "GPU-a"), (1, "GPU-b")]
    assert gpus[0].metrics == {
        "gpu_util_pct": 75.0,
        "gpu_mem_util_pct": 30.0,
        "gpu_mem_used_bytes": 40 * 2**30,
        "gpu_mem_total_bytes": 80 * 2**30,
        "gpu_power_w": 350.0,
        "gpu_energy_j": 123456.789,
        "gpu_temp_c": 61.0,
    }
    assert gpus[1].metrics["gpu_util_pct"] == 5.0


def test_nvml_is_initialised_once():
    nvml = FakeNvml([FakeGpu("GPU-a")])
    sampler = GpuSampler(nvml)
    for _ in range(3):
        sampler.sample()
    assert nvml.init_calls == 1


def test_unsupported_fields_are_null():
    gpu = FakeGpu(
        "GPU-old", unsupported={"nvmlDeviceGetTotalEnergyConsumption", "nvmlDeviceGetPowerUsage"}
    )
    metrics = GpuSampler(FakeNvml([gpu])).sample().gpus[0].metrics
    assert metrics["gpu_energy_j"] is None
    assert metrics["gpu_power_w"] is None
    assert metrics["gpu_util_pct"] == 75.0


def test_a_gpu_that_disappears_is_left_out_and_logged_once(caplog):
    gpus = [FakeGpu("GPU-a"), FakeGpu("GPU-b")]
    sampler = GpuSampler(FakeNvml(gpus))
    gpus[1].lost = True
    with caplog.at_level(logging.WARNING):
        first, second = sampler.sample(), sampler.sample()
    assert [g.uuid for g in first.gpus] == ["GPU-a"]
    assert [g.uuid for g in second.gpus] == ["GPU-a"]
    assert sum("does not answer" in r.message for r in caplog.records) == 1


def test_no_driver_means_no_gpus_and_one_clear_check_line():
    sampler = GpuSampler(FakeNvml([], init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND))
    assert sampler.sample().gpus == ()
    assert sampler.inventory() == ()
    check = sampler.check()
    assert not check.ok
    assert check.detail == "NVML unavailable: NVML Shared Library Not Found"


def test_inventory_and_check_name_the_gpus():
    sampler = GpuSampler(FakeNvml([FakeGpu("GPU-a")]))
    (info,) = sampler.inventory()
    assert (info.index, info.uuid, info.name, info.mem_total_bytes) == (
        0,
        "GPU-a",
        "NVIDIA H100 80GB HBM3",
        80 * 2**30,
    )
    assert sampler.check().detail == "NVML, driver 550.54.15: NVIDIA H100 80GB HBM3"
