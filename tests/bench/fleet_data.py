"""Realistic telemetry for the store's benchmarks, generated, not waited for: what agents
send (NVML's integers and milliwatts, psutil's one decimal), slowly varying, with counters
that only grow. Deterministic per (node, seed)."""

from __future__ import annotations

import numpy as np

from shared.messages import GpuSample, Sample

CORES = 16


class Node:
    """One node's telemetry stream: `next(ts)` gives its sample at `ts` (1 s apart)."""

    def __init__(self, name: str, gpus: int, seed: int = 0) -> None:
        self.name, self.gpus = name, gpus
        self.rng = np.random.default_rng(abs(hash((name, seed))) % 2**32)
        self.load = float(self.rng.uniform(0, 100))  # the job's intensity, a random walk
        self.energy = float(self.rng.uniform(1e6, 1e8))
        self.gpu_energy = self.rng.uniform(1e6, 1e8, gpus)
        self.gpu_mem = self.rng.integers(1, 70, gpus) * 2**30
        self.i = 0

    def next(self, ts: float) -> Sample:
        rng, self.i = self.rng, self.i + 1
        if rng.random() < 0.002:  # a job ends or starts
            self.load = float(rng.uniform(0, 100))
        self.load = float(np.clip(self.load + rng.normal(0, 0.5), 0, 100))
        cpu = round(float(np.clip(self.load * 0.3 + rng.normal(0, 2), 0, 100)), 1)
        power = round(150 + cpu * 2 + self.gpus * (60 + 3.5 * self.load), 1)
        self.energy += power * 0.6
        metrics: dict[str, object] = {
            "cpu_util_pct": cpu,
            "cpu_core_util_pct": tuple(
                round(float(v), 1) for v in np.clip(cpu + rng.normal(0, 5, CORES), 0, 100)
            ),
            "cpu_freq_mhz": float(2400 + int(rng.integers(0, 4)) * 100),
            "load_avg_1m": round(cpu / 10, 2),
            "load_avg_5m": round(cpu / 11, 2),
            "load_avg_15m": round(cpu / 12, 2),
            "mem_total_bytes": 2**39,
            "mem_used_bytes": 2**37 + (self.i // 30) * 4096,
            "mem_available_bytes": 2**39 - 2**37 - (self.i // 30) * 4096,
            "swap_used_bytes": 0,
            "rapl_package_energy_j": round(self.energy, 6),
            "rapl_dram_energy_j": round(self.energy / 10, 6),
            "rapl_power_w": round(power * 0.6, 1),
            "power_w": power,
            "connections": int(self.load // 20),
            "jobs_running": 1 if self.load > 5 else 0,
            "spool_memory_samples": 0,
        }
        return Sample(ts=ts, metrics=metrics, gpus=tuple(self._gpu(g) for g in range(self.gpus)))

    def _gpu(self, g: int) -> GpuSample:
        rng = self.rng
        util = int(np.clip(self.load + rng.normal(0, 3), 0, 100))
        power_mw = int(60_000 + 3_500 * util + rng.integers(0, 2_000))
        self.gpu_energy[g] += power_mw  # NVML's total energy counter is in mJ
        return GpuSample(
            index=g,
            uuid=f"GPU-{self.name}-{g}",
            metrics={
                "gpu_util_pct": float(util),
                "gpu_mem_util_pct": float(util // 2),
                "gpu_mem_used_bytes": int(self.gpu_mem[g]),
                "gpu_mem_total_bytes": 80 * 2**30,
                "gpu_power_w": power_mw / 1000,
                "gpu_energy_j": round(float(self.gpu_energy[g]) / 1000, 3),
                "gpu_temp_c": float(35 + util // 3),
                "gpu_xid_count": 0,
                "gpu_xid_last": 0,
                "gpu_ecc_volatile_corrected": 0,
                "gpu_ecc_volatile_uncorrected": 0,
                "gpu_ecc_aggregate_corrected": 3,
                "gpu_ecc_aggregate_uncorrected": 0,
                "gpu_remap_correctable_rows": 0,
                "gpu_remap_uncorrectable_rows": 0,
                "gpu_remap_pending": 0,
                "gpu_remap_failed": 0,
                "gpu_retired_pages_pending": 0,
                "gpu_pcie_replay_count": 0,
                "gpu_throttle_power_cap": 0,
                "gpu_throttle_thermal": 0,
                "gpu_throttle_hw_slowdown": 0,
                "gpu_clock_sm_mhz": float(1980 if util > 5 else 345),
                "gpu_clock_mem_mhz": 2619.0,
                "gpu_power_limit_w": 700.0,
            },
        )


def values_per_sample(gpus: int) -> int:
    """What a sample carries: the node's scalars and cores, each GPU's metrics."""
    return 16 + 1 + CORES + gpus * 25
