from __future__ import annotations

import logging

import pynvml

from agent.samplers.gpu import GpuSampler
from tests.unit.samplers_support import FakeGpu, FakeNvml

FIRST_FIELDS = {
    "gpu_util_pct",
    "gpu_mem_util_pct",
    "gpu_mem_used_bytes",
    "gpu_mem_total_bytes",
    "gpu_power_w",
    "gpu_energy_j",
    "gpu_temp_c",
}


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
        "gpu_xid_count": 0,
        "gpu_xid_last": 0,
        "gpu_ecc_volatile_corrected": 0,
        "gpu_ecc_volatile_uncorrected": 0,
        "gpu_ecc_aggregate_corrected": 0,
        "gpu_ecc_aggregate_uncorrected": 0,
        "gpu_remap_correctable_rows": 0,
        "gpu_remap_uncorrectable_rows": 0,
        "gpu_remap_pending": 0,
        "gpu_remap_failed": 0,
        "gpu_retired_pages_pending": 0,
        "gpu_pcie_replay_count": 7,
        "gpu_throttle_power_cap": 0,
        "gpu_throttle_thermal": 0,
        "gpu_throttle_hw_slowdown": 0,
        "gpu_clock_sm_mhz": 1980.0,
        "gpu_clock_mem_mhz": 2619.0,
        "gpu_power_limit_w": 700.0,
    }
    assert (gpus[0].health, gpus[0].reason) == ("ok", "")
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


def test_a_gpu_that_disappears_is_failed_with_no_metrics_and_logged_once(caplog):
    gpus = [FakeGpu("GPU-a"), FakeGpu("GPU-b")]
    sampler = GpuSampler(FakeNvml(gpus))
    sampler.sample()
    gpus[1].lost = True
    with caplog.at_level(logging.WARNING):
        first, second = sampler.sample(), sampler.sample()
    for reading in (first, second):
        assert [(g.uuid, g.health) for g in reading.gpus] == [
            ("GPU-a", "ok"),
            ("GPU-b", "failed"),
        ]
        assert reading.gpus[1].metrics == {}
        assert reading.gpus[1].reason == "does not answer: GPU is lost"
    assert sum("does not answer" in r.message for r in caplog.records) == 1


def test_health_fields_read_from_the_driver():
    unc, vol = pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_VOLATILE_ECC
    gpu = FakeGpu(
        "GPU-a",
        ecc={(unc, vol): 2, (unc, pynvml.NVML_AGGREGATE_ECC): 5},
        remapped=(3, 1, 1, 0),
        pcie_replays=40,
        clocks_reasons=0x4 | 0x40,  # power cap and HW thermal
        clocks_mhz=(1410, 1593),
        power_limit_mw=400_000,
    )
    (sample,) = GpuSampler(FakeNvml([gpu])).sample().gpus
    m = sample.metrics
    assert (m["gpu_ecc_volatile_uncorrected"], m["gpu_ecc_aggregate_uncorrected"]) == (2, 5)
    assert m["gpu_ecc_volatile_corrected"] == 0
    assert (m["gpu_remap_correctable_rows"], m["gpu_remap_uncorrectable_rows"]) == (3, 1)
    assert (m["gpu_remap_pending"], m["gpu_remap_failed"]) == (1, 0)
    assert (m["gpu_throttle_power_cap"], m["gpu_throttle_thermal"]) == (1, 1)
    assert m["gpu_throttle_hw_slowdown"] == 0
    assert (m["gpu_clock_sm_mhz"], m["gpu_clock_mem_mhz"], m["gpu_power_limit_w"]) == (
        1410.0,
        1593.0,
        400.0,
    )
    # uncorrectable errors with a remap pending: the reset repairs it, so degraded, not failed
    assert (sample.health, sample.reason) == ("degraded", "row remap pending: reset the GPU")


def test_a_critical_xid_is_counted_kept_and_fails_the_gpu():
    gpus = [FakeGpu("GPU-a"), FakeGpu("GPU-b")]
    sampler = GpuSampler(FakeNvml(gpus))
    assert sampler.sample().gpus[1].metrics["gpu_xid_count"] == 0
    gpus[1].xids += [13, 79]  # an application fault, then the GPU fell off the bus
    for _ in range(2):  # the XID is an event: the verdict stays after it was read
        a, b = sampler.sample().gpus
        assert (a.health, a.metrics["gpu_xid_count"]) == ("ok", 0)
        assert (b.metrics["gpu_xid_count"], b.metrics["gpu_xid_last"]) == (2, 79)
        assert (b.health, b.reason) == ("failed", "XID 79: fell off the bus")


def test_no_event_support_leaves_xid_fields_null():
    nvml = FakeNvml([FakeGpu("GPU-a"), FakeGpu("GPU-b", unsupported={"nvmlDeviceRegisterEvents"})])
    (a, b) = GpuSampler(nvml).sample().gpus
    assert a.metrics["gpu_xid_count"] == 0
    assert (b.metrics["gpu_xid_count"], b.metrics["gpu_xid_last"]) == (None, None)
    nvml = FakeNvml([FakeGpu("GPU-a")])
    nvml.events_supported = False
    (a,) = GpuSampler(nvml).sample().gpus
    assert (a.metrics["gpu_xid_last"], a.health) == (None, "ok")


def test_an_old_driver_without_the_new_fields_gives_nulls_not_errors():
    missing = {
        "nvmlDeviceGetTotalEccErrors",
        "nvmlDeviceGetRemappedRows",
        "nvmlDeviceGetRetiredPagesPendingStatus",
        "nvmlDeviceGetPcieReplayCounter",
        "nvmlDeviceGetCurrentClocksEventReasons",
        "nvmlDeviceGetClockInfo",
        "nvmlDeviceGetEnforcedPowerLimit",
    }
    (sample,) = GpuSampler(FakeNvml([FakeGpu("GPU-old", unsupported=missing)])).sample().gpus
    health = [m for m in sample.metrics if m not in FIRST_FIELDS and "xid" not in m]
    assert len(health) == 16
    assert all(sample.metrics[m] is None for m in health)
    assert sample.health == "ok"


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


def test_clocks_that_dip_now_and_then_keep_the_gpu_degraded_not_flapping():
    now = [0.0]
    gpu = FakeGpu("GPU-a")
    sampler = GpuSampler(FakeNvml([gpu]), now=lambda: now[0])
    seen = []
    for second in range(120):
        now[0] = float(second)
        gpu.clocks_reasons = 0x40 if second in {10, 40} else 0  # HW thermal, twice
        seen.append(sampler.sample().gpus[0].health)
    assert seen[:10] == ["ok"] * 10
    assert seen[10:100] == ["degraded"] * 90  # 40 + 60 s hold
    assert seen[100:] == ["ok"] * 20
