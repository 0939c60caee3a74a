"""GPUs through NVML (nvidia-ml-py, imported as `pynvml`): use, power, energy and health.

NVML is initialised once. A field a GPU does not support is `None`; a GPU that stops
answering is sampled as failed with no metrics (and logged once); no driver means no GPUs
and one line in `dormouse-agent check`. Each GPU's health (`shared.gpuhealth`) is judged
from its metrics, its critical XIDs (`agent.samplers.xid`) and its previous sample.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from agent.logonce import LogOnce
from agent.samplers.base import Availability, Reading
from agent.samplers.xid import XidWatcher
from shared import gpuhealth
from shared.messages import GpuInfo, GpuSample

log = logging.getLogger(__name__)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def field_readers(nvml: Any) -> dict[str, Callable[[Any], float | int]]:
    """Metric name -> how to read it from a device handle, converted to the metric's unit."""
    return {
        "gpu_util_pct": lambda h: nvml.nvmlDeviceGetUtilizationRates(h).gpu,
        "gpu_mem_util_pct": lambda h: nvml.nvmlDeviceGetUtilizationRates(h).memory,
        "gpu_mem_used_bytes": lambda h: nvml.nvmlDeviceGetMemoryInfo(h).used,
        "gpu_mem_total_bytes": lambda h: nvml.nvmlDeviceGetMemoryInfo(h).total,
        "gpu_power_w": lambda h: nvml.nvmlDeviceGetPowerUsage(h) / 1000.0,
        "gpu_energy_j": lambda h: nvml.nvmlDeviceGetTotalEnergyConsumption(h) / 1000.0,
        "gpu_temp_c": lambda h: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU),
        **_ecc_readers(nvml),
        "gpu_remap_correctable_rows": lambda h: nvml.nvmlDeviceGetRemappedRows(h)[0],
        "gpu_remap_uncorrectable_rows": lambda h: nvml.nvmlDeviceGetRemappedRows(h)[1],
        "gpu_remap_pending": lambda h: int(bool(nvml.nvmlDeviceGetRemappedRows(h)[2])),
        "gpu_remap_failed": lambda h: int(bool(nvml.nvmlDeviceGetRemappedRows(h)[3])),
        "gpu_retired_pages_pending": lambda h: int(
            nvml.nvmlDeviceGetRetiredPagesPendingStatus(h) == nvml.NVML_FEATURE_ENABLED
        ),
        "gpu_pcie_replay_count": nvml.nvmlDeviceGetPcieReplayCounter,
        **{metric: _throttle_reader(nvml, bits) for metric, bits in THROTTLE_BITS.items()},
        "gpu_clock_sm_mhz": lambda h: float(nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM)),
        "gpu_clock_mem_mhz": lambda h: float(nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_MEM)),
        "gpu_power_limit_w": lambda h: nvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0,
    }


# Clocks-event (throttle) reason bits, as NVML declares them (nvmlClocksEventReason*).
SW_POWER_CAP, HW_SLOWDOWN, SW_THERMAL, HW_THERMAL, HW_POWER_BRAKE = 0x4, 0x8, 0x20, 0x40, 0x80
THROTTLE_BITS = {
    "gpu_throttle_power_cap": SW_POWER_CAP,
    "gpu_throttle_thermal": SW_THERMAL | HW_THERMAL,
    "gpu_throttle_hw_slowdown": HW_SLOWDOWN | HW_POWER_BRAKE,
}


def _throttle_reader(nvml: Any, bits: int) -> Callable[[Any], int]:
    """1 while any of `bits` holds the clocks down. Bindings from driver 535 name the call
    clocks events; older ones only know throttle reasons."""
    read = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
    if read is None:
        read = nvml.nvmlDeviceGetCurrentClocksThrottleReasons
    return lambda h: int(bool(int(read(h)) & bits))


def _ecc_readers(nvml: Any) -> dict[str, Callable[[Any], float | int]]:
    def reader(errors: int, counter: int) -> Callable[[Any], int]:
        return lambda h: int(nvml.nvmlDeviceGetTotalEccErrors(h, errors, counter))

    corrected, uncorrected = (
        nvml.NVML_MEMORY_ERROR_TYPE_CORRECTED,
        nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
    )
    volatile, aggregate = nvml.NVML_VOLATILE_ECC, nvml.NVML_AGGREGATE_ECC
    return {
        "gpu_ecc_volatile_corrected": reader(corrected, volatile),
        "gpu_ecc_volatile_uncorrected": reader(uncorrected, volatile),
        "gpu_ecc_aggregate_corrected": reader(corrected, aggregate),
        "gpu_ecc_aggregate_uncorrected": reader(uncorrected, aggregate),
    }


class GpuSampler:
    name = "gpu"

    def __init__(
        self, nvml: ModuleType | Any | None = None, now: Callable[[], float] = time.monotonic
    ) -> None:
        if nvml is None:
            import pynvml  # noqa: PLC0415 - the real binding only where no fake is given

            nvml = pynvml
        self._nvml = nvml
        self._now = now
        self._once = LogOnce(log)
        self._readers = field_readers(nvml)
        self._error: str | None = None
        self._xids: XidWatcher | None = None
        self._uuids: dict[int, str] = {}  # index -> UUID, to name a GPU that stops answering
        self._lost: dict[int, str] = {}  # index -> why it does not answer, this pass
        self._previous: dict[str, dict[str, Any]] = {}  # UUID -> last metrics, for rates
        self._verdicts: dict[str, gpuhealth.Sticky] = {}  # UUID -> its shown verdict
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            self._error = str(exc)
            log.info("no GPUs sampled: NVML unavailable (%s)", exc)
        else:
            self._xids = XidWatcher(nvml)

    def close(self) -> None:
        if self._error is None:
            if self._xids is not None:
                self._xids.close()
            self._nvml.nvmlShutdown()

    def _handles(self) -> list[tuple[int, str, Any]]:
        """(index, uuid, handle) of each GPU that answers now; the others in `_lost`."""
        self._lost = {}
        if self._error is not None:
            return []
        found = []
        for index in range(self._nvml.nvmlDeviceGetCount()):
            try:
                handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
                found.append((index, _text(self._nvml.nvmlDeviceGetUUID(handle)), handle))
            except self._nvml.NVMLError as exc:
                self._once.warning(("lost", index), "GPU %d does not answer: %s", index, exc)
                self._lost[index] = str(exc)
        for index, uuid, handle in found:
            self._uuids[index] = uuid
            if self._xids is not None:
                self._xids.watch(uuid, handle)
        return found

    def _read(self, uuid: str, metric: str, handle: Any) -> float | int | None:
        try:
            return self._readers[metric](handle)
        except self._nvml.NVMLError_NotSupported:
            return None
        except self._nvml.NVMLError as exc:
            self._once.warning(
                (uuid, metric, type(exc)), "GPU %s: %s unreadable: %s", uuid, metric, exc
            )
            return None

    def sample(self) -> Reading:
        handles = self._handles()
        if self._xids is not None:
            self._xids.drain()
        gpus = [self._sample_one(index, uuid, handle) for index, uuid, handle in handles]
        gpus += [self._sample_lost(index, error) for index, error in self._lost.items()]
        return Reading(gpus=tuple(sorted(gpus, key=lambda g: g.index)))

    def _sample_one(self, index: int, uuid: str, handle: Any) -> GpuSample:
        metrics: dict[str, Any] = {m: self._read(uuid, m, handle) for m in self._readers}
        if self._xids is not None:
            metrics |= self._xids.metrics(uuid)
        judged = gpuhealth.judge(metrics, self._previous.get(uuid))
        verdict = self._verdicts.setdefault(uuid, gpuhealth.Sticky()).update(judged, self._now())
        self._previous[uuid] = metrics
        return GpuSample(
            index=index, uuid=uuid, metrics=metrics, health=verdict.health, reason=verdict.reason
        )

    def _sample_lost(self, index: int, error: str) -> GpuSample:
        verdict = gpuhealth.lost(error)
        uuid = self._uuids.get(index, "")
        return GpuSample(
            index=index, uuid=uuid, metrics={}, health=verdict.health, reason=verdict.reason
        )

    def inventory(self) -> tuple[GpuInfo, ...]:
        return tuple(
            GpuInfo(
                index=index,
                uuid=uuid,
                name=_text(self._nvml.nvmlDeviceGetName(handle)),
                mem_total_bytes=int(self._read(uuid, "gpu_mem_total_bytes", handle) or 0),
            )
            for index, uuid, handle in self._handles()
        )

    def check(self) -> Availability:
        if self._error is not None:
            return Availability(self.name, False, f"NVML unavailable: {self._error}")
        driver = _text(self._nvml.nvmlSystemGetDriverVersion())
        names = ", ".join(g.name for g in self.inventory()) or "no GPUs"
        return Availability(self.name, True, f"NVML, driver {driver}: {names}")
