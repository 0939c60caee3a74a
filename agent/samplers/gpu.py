"""GPUs through NVML (nvidia-ml-py, imported as `pynvml`).

NVML is initialised once. A field a GPU does not support is `None`; a GPU that stops
answering is left out of the sample (and logged once); no driver means no GPUs and one line
in `dormouse-agent check`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import ModuleType
from typing import Any

from agent.logonce import LogOnce
from agent.samplers.base import Availability, Reading
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
    }


class GpuSampler:
    name = "gpu"

    def __init__(self, nvml: ModuleType | Any | None = None) -> None:
        if nvml is None:
            import pynvml  # noqa: PLC0415 - the real binding only where no fake is given

            nvml = pynvml
        self._nvml = nvml
        self._once = LogOnce(log)
        self._readers = field_readers(nvml)
        self._error: str | None = None
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            self._error = str(exc)
            log.info("no GPUs sampled: NVML unavailable (%s)", exc)

    def close(self) -> None:
        if self._error is None:
            self._nvml.nvmlShutdown()

    def _handles(self) -> list[tuple[int, str, Any]]:
        """(index, uuid, handle) of each GPU that answers now."""
        if self._error is not None:
            return []
        found = []
        for index in range(self._nvml.nvmlDeviceGetCount()):
            try:
                handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
                found.append((index, _text(self._nvml.nvmlDeviceGetUUID(handle)), handle))
            except self._nvml.NVMLError as exc:
                self._once.warning(("lost", index), "GPU %d does not answer: %s", index, exc)
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
        gpus = tuple(
            GpuSample(
                index=index,
                uuid=uuid,
                metrics={m: self._read(uuid, m, handle) for m in self._readers},
            )
            for index, uuid, handle in self._handles()
        )
        return Reading(gpus=gpus)

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
