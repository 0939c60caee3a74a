"""A copy of the fake host tree per test, and a fake NVML with the real binding's errors."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml

HOST1 = Path(__file__).parent.parent / "fixtures" / "host1"


def host_tree(tmp_path: Path) -> tuple[Path, Path]:
    """(proc_root, sys_root) of a writable copy of tests/fixtures/host1."""
    root = tmp_path / "host"
    shutil.copytree(HOST1, root)
    return root / "proc", root / "sys"


@dataclass
class FakeGpu:
    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    util: tuple[int, int] = (75, 30)
    mem: tuple[int, int] = (40 * 2**30, 80 * 2**30)  # used, total
    power_mw: int = 350_000
    energy_mj: int = 123_456_789
    temp_c: int = 61
    ecc: dict[tuple[int, int], int] = field(default_factory=dict)  # (error type, counter)
    remapped: tuple[int, int, int, int] = (0, 0, 0, 0)  # corrected, uncorrected, pending, failed
    retired_pending: bool = False
    pcie_replays: int = 7
    clocks_reasons: int = 0
    clocks_mhz: tuple[int, int] = (1980, 2619)  # SM, memory
    power_limit_mw: int = 700_000
    xids: list[int] = field(default_factory=list)  # critical XIDs waiting in the event set
    unsupported: set[str] = field(default_factory=set)  # NVML function names
    lost: bool = False


class FakeNvml:
    """The slice of pynvml the GPU sampler uses, over a list of FakeGpu."""

    NVMLError = pynvml.NVMLError
    NVMLError_NotSupported = pynvml.NVMLError_NotSupported
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
    NVML_MEMORY_ERROR_TYPE_CORRECTED = pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED
    NVML_MEMORY_ERROR_TYPE_UNCORRECTED = pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED
    NVML_VOLATILE_ECC = pynvml.NVML_VOLATILE_ECC
    NVML_AGGREGATE_ECC = pynvml.NVML_AGGREGATE_ECC
    NVML_FEATURE_ENABLED = pynvml.NVML_FEATURE_ENABLED
    NVML_CLOCK_SM = pynvml.NVML_CLOCK_SM
    NVML_CLOCK_MEM = pynvml.NVML_CLOCK_MEM
    NVML_ERROR_TIMEOUT = pynvml.NVML_ERROR_TIMEOUT
    nvmlEventTypeXidCriticalError = pynvml.nvmlEventTypeXidCriticalError  # noqa: N815 - the binding's name

    def __init__(self, gpus: list[FakeGpu], init_error: int | None = None) -> None:
        self.gpus, self.init_error = gpus, init_error
        self.init_calls = 0
        self.events_supported = True
        self.registered: list[FakeGpu] = []

    def nvmlInit(self) -> None:
        self.init_calls += 1
        if self.init_error is not None:
            raise pynvml.NVMLError(self.init_error)

    def nvmlShutdown(self) -> None:
        pass

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54.15"

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        gpu = self.gpus[index]
        if gpu.lost:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        return gpu

    def _get(self, gpu: FakeGpu, function: str, value: Any) -> Any:
        if gpu.lost:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        if function in gpu.unsupported:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return value

    def nvmlDeviceGetUUID(self, gpu: FakeGpu) -> str:
        return self._get(gpu, "uuid", gpu.uuid)

    def nvmlDeviceGetName(self, gpu: FakeGpu) -> bytes:
        return self._get(gpu, "name", gpu.name.encode())  # older bindings return bytes

    def nvmlDeviceGetUtilizationRates(self, gpu: FakeGpu) -> Any:
        util = SimpleNamespace(gpu=gpu.util[0], memory=gpu.util[1])
        return self._get(gpu, "nvmlDeviceGetUtilizationRates", util)

    def nvmlDeviceGetMemoryInfo(self, gpu: FakeGpu) -> Any:
        memory = SimpleNamespace(used=gpu.mem[0], total=gpu.mem[1], free=gpu.mem[1] - gpu.mem[0])
        return self._get(gpu, "nvmlDeviceGetMemoryInfo", memory)

    def nvmlDeviceGetPowerUsage(self, gpu: FakeGpu) -> int:
        return self._get(gpu, "nvmlDeviceGetPowerUsage", gpu.power_mw)

    def nvmlDeviceGetTotalEnergyConsumption(self, gpu: FakeGpu) -> int:
        return self._get(gpu, "nvmlDeviceGetTotalEnergyConsumption", gpu.energy_mj)

    def nvmlDeviceGetTemperature(self, gpu: FakeGpu, sensor: int) -> int:
        assert sensor == pynvml.NVML_TEMPERATURE_GPU
        return self._get(gpu, "nvmlDeviceGetTemperature", gpu.temp_c)

    def nvmlDeviceGetTotalEccErrors(self, gpu: FakeGpu, errors: int, counter: int) -> int:
        return self._get(gpu, "nvmlDeviceGetTotalEccErrors", gpu.ecc.get((errors, counter), 0))

    def nvmlDeviceGetRemappedRows(self, gpu: FakeGpu) -> tuple[int, int, int, int]:
        return self._get(gpu, "nvmlDeviceGetRemappedRows", gpu.remapped)

    def nvmlDeviceGetRetiredPagesPendingStatus(self, gpu: FakeGpu) -> int:
        status = pynvml.NVML_FEATURE_ENABLED if gpu.retired_pending else 0
        return self._get(gpu, "nvmlDeviceGetRetiredPagesPendingStatus", status)

    def nvmlDeviceGetPcieReplayCounter(self, gpu: FakeGpu) -> int:
        return self._get(gpu, "nvmlDeviceGetPcieReplayCounter", gpu.pcie_replays)

    def nvmlDeviceGetCurrentClocksEventReasons(self, gpu: FakeGpu) -> int:
        return self._get(gpu, "nvmlDeviceGetCurrentClocksEventReasons", gpu.clocks_reasons)

    def nvmlDeviceGetClockInfo(self, gpu: FakeGpu, clock: int) -> int:
        value = gpu.clocks_mhz[0 if clock == pynvml.NVML_CLOCK_SM else 1]
        return self._get(gpu, "nvmlDeviceGetClockInfo", value)

    def nvmlDeviceGetEnforcedPowerLimit(self, gpu: FakeGpu) -> int:
        return self._get(gpu, "nvmlDeviceGetEnforcedPowerLimit", gpu.power_limit_mw)

    def nvmlEventSetCreate(self) -> str:
        if not self.events_supported:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return "event-set"

    def nvmlEventSetFree(self, event_set: str) -> None:
        pass

    def nvmlDeviceRegisterEvents(self, gpu: FakeGpu, types: int, event_set: str) -> None:
        assert types == pynvml.nvmlEventTypeXidCriticalError
        self._get(gpu, "nvmlDeviceRegisterEvents", None)
        self.registered.append(gpu)

    def nvmlEventSetWait_v2(self, event_set: str, timeout_ms: int) -> Any:
        assert timeout_ms == 0, "the sampler must never block on events"
        for gpu in self.registered:
            if gpu.xids:
                code = gpu.xids.pop(0)
                return SimpleNamespace(device=gpu, eventType=0x8, eventData=code)
        raise pynvml.NVMLError(pynvml.NVML_ERROR_TIMEOUT)
