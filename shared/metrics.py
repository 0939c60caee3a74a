"""Every metric dormouse knows, declared once as data.

The agent's samplers emit these names, the codec validates values against them, the store
and its rollups take their columns and aggregation from them, and the CLI lists them. Adding
a metric is adding one `Metric(...)` line here (and the sampler that fills it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    GAUGE = "gauge"  # a level: rolls up to avg / min / max
    COUNTER = "counter"  # monotonic total (wraps handled by the agent): rolls up to the increase


class Scope(StrEnum):
    NODE = "node"
    GPU = "gpu"


@dataclass(frozen=True, slots=True, kw_only=True)
class Metric:
    name: str
    unit: str
    kind: Kind
    scope: Scope
    integer: bool = False
    lo: float = 0.0
    hi: float = 2.0**62
    vector: bool = False  # one value per CPU core, for example
    help: str = ""


_BYTES_MAX = 2.0**60
_ENERGY_MAX = 1e15  # J: a 100 kW node for 300 years


def _node(name: str, unit: str, help_: str, **kw: object) -> Metric:
    return Metric(name=name, unit=unit, scope=Scope.NODE, help=help_, **kw)  # type: ignore[arg-type]


def _gpu(name: str, unit: str, help_: str, **kw: object) -> Metric:
    return Metric(name=name, unit=unit, scope=Scope.GPU, help=help_, **kw)  # type: ignore[arg-type]


G, C = Kind.GAUGE, Kind.COUNTER
_COUNT: dict[str, object] = {"kind": C, "integer": True, "hi": 2.0**62}
_FLAG: dict[str, object] = {"kind": G, "integer": True, "hi": 2.0**31}
_BIT: dict[str, object] = {"kind": G, "integer": True, "hi": 1}  # rolls up to a time share

METRICS: tuple[Metric, ...] = (
    _node("cpu_util_pct", "%", "CPU busy share over the interval, all cores", kind=G, hi=100),
    _node("cpu_core_util_pct", "%", "CPU busy share per core", kind=G, hi=100, vector=True),
    _node("cpu_freq_mhz", "MHz", "mean current CPU frequency", kind=G, hi=1e5),
    _node("load_avg_1m", "1", "run-queue length, 1 minute average", kind=G, hi=1e7),
    _node("load_avg_5m", "1", "run-queue length, 5 minute average", kind=G, hi=1e7),
    _node("load_avg_15m", "1", "run-queue length, 15 minute average", kind=G, hi=1e7),
    _node("mem_total_bytes", "B", "physical memory", kind=G, integer=True, hi=_BYTES_MAX),
    _node(
        "mem_used_bytes",
        "B",
        "memory in use (total - available)",
        kind=G,
        integer=True,
        hi=_BYTES_MAX,
    ),
    _node(
        "mem_available_bytes",
        "B",
        "memory available to new work",
        kind=G,
        integer=True,
        hi=_BYTES_MAX,
    ),
    _node("swap_used_bytes", "B", "swap in use", kind=G, integer=True, hi=_BYTES_MAX),
    _node(
        "rapl_package_energy_j",
        "J",
        "CPU package energy (RAPL), all sockets",
        kind=C,
        hi=_ENERGY_MAX,
    ),
    _node("rapl_dram_energy_j", "J", "DRAM energy (RAPL), all sockets", kind=C, hi=_ENERGY_MAX),
    _node("rapl_power_w", "W", "CPU package + DRAM power over the interval (RAPL)", kind=G, hi=1e6),
    _node("power_w", "W", "node power: RAPL + GPUs where measured", kind=G, hi=1e6),
    _node(
        "connections",
        "1",
        "established TCP connections on service ports",
        kind=G,
        integer=True,
        hi=1e9,
    ),
    _node("jobs_running", "1", "jobs the agent is running", kind=G, integer=True, hi=1e6),
    _node(
        "spool_memory_samples",
        "1",
        "samples held in memory: the spool file takes no writes (disk full, read-only)",
        kind=G,
        integer=True,
        hi=1e9,
    ),
    _gpu("gpu_util_pct", "%", "GPU busy share (NVML)", kind=G, hi=100),
    _gpu("gpu_mem_util_pct", "%", "GPU memory bandwidth busy share (NVML)", kind=G, hi=100),
    _gpu("gpu_mem_used_bytes", "B", "GPU memory in use", kind=G, integer=True, hi=_BYTES_MAX),
    _gpu("gpu_mem_total_bytes", "B", "GPU memory", kind=G, integer=True, hi=_BYTES_MAX),
    _gpu("gpu_power_w", "W", "GPU board power", kind=G, hi=1e5),
    _gpu("gpu_energy_j", "J", "GPU energy since driver load (NVML)", kind=C, hi=_ENERGY_MAX),
    _gpu("gpu_temp_c", "Cel", "GPU core temperature", kind=G, lo=-100, hi=250),
    # Health: the signals that say a GPU must not get new work (shared/gpuhealth.py reads them)
    _gpu("gpu_xid_count", "1", "critical XID errors seen since the agent started", **_COUNT),
    _gpu("gpu_xid_last", "1", "the last critical XID error code seen (0: none)", **_FLAG),
    _gpu("gpu_ecc_volatile_corrected", "1", "corrected ECC errors since driver load", **_COUNT),
    _gpu("gpu_ecc_volatile_uncorrected", "1", "uncorrected ECC errors since driver load", **_COUNT),
    _gpu("gpu_ecc_aggregate_corrected", "1", "corrected ECC errors, GPU lifetime", **_COUNT),
    _gpu("gpu_ecc_aggregate_uncorrected", "1", "uncorrected ECC errors, GPU lifetime", **_COUNT),
    _gpu("gpu_remap_correctable_rows", "1", "rows remapped for correctable errors", **_FLAG),
    _gpu("gpu_remap_uncorrectable_rows", "1", "rows remapped for uncorrectable errors", **_FLAG),
    _gpu("gpu_remap_pending", "1", "1: a row remap waits for a GPU reset", **_BIT),
    _gpu("gpu_remap_failed", "1", "1: a row remap failed (no spare rows)", **_BIT),
    _gpu("gpu_retired_pages_pending", "1", "1: a page retirement waits for a reset", **_BIT),
    _gpu("gpu_pcie_replay_count", "1", "PCIe replays since driver load", **_COUNT),
    _gpu("gpu_throttle_power_cap", "1", "1: clocks held down by the power cap", **_BIT),
    _gpu("gpu_throttle_thermal", "1", "1: clocks held down for heat (SW or HW)", **_BIT),
    _gpu("gpu_throttle_hw_slowdown", "1", "1: HW slowdown or power brake", **_BIT),
    _gpu("gpu_clock_sm_mhz", "MHz", "SM clock now", kind=G, hi=1e5),
    _gpu("gpu_clock_mem_mhz", "MHz", "memory clock now", kind=G, hi=1e5),
    _gpu("gpu_power_limit_w", "W", "enforced power limit", kind=G, hi=1e5),
)

BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}
MAX_VECTOR_LEN = 4096


def metrics_in(scope: Scope) -> tuple[Metric, ...]:
    return _IN_SCOPE[scope]


_IN_SCOPE = {s: tuple(m for m in METRICS if m.scope is s) for s in Scope}  # asked per sample
