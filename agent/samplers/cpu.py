"""CPU: total and per-core utilisation from /proc/stat, frequency from cpufreq, load average."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.samplers.base import Availability, Reading, read_error, read_text


@dataclass(frozen=True, slots=True)
class CpuTimes:
    busy: int
    total: int


def parse_proc_stat(text: str) -> tuple[CpuTimes, list[CpuTimes]]:
    """The aggregate `cpu` line and each `cpuN` line, in jiffies. Busy excludes idle and
    iowait; guest time is already inside user, so only the first eight fields count."""
    total_times: CpuTimes | None = None
    cores: list[CpuTimes] = []
    for line in text.splitlines():
        if not line.startswith("cpu"):
            continue
        name, *fields = line.split()
        values = [int(v) for v in fields[:8]] + [0] * (8 - len(fields[:8]))
        idle = values[3] + values[4]
        times = CpuTimes(busy=sum(values) - idle, total=sum(values))
        if name == "cpu":
            total_times = times
        else:
            cores.append(times)
    if total_times is None:
        raise ValueError("no aggregate cpu line in /proc/stat")
    return total_times, cores


def utilisation_pct(before: CpuTimes, after: CpuTimes) -> float:
    elapsed = after.total - before.total
    if elapsed <= 0:
        return 0.0
    return min(100.0, max(0.0, 100.0 * (after.busy - before.busy) / elapsed))


def parse_loadavg(text: str) -> tuple[float, float, float]:
    one, five, fifteen = (float(v) for v in text.split()[:3])
    return one, five, fifteen


def parse_freqs_khz(texts: list[str]) -> float | None:
    """Mean of cpufreq's scaling_cur_freq files (kHz), in MHz."""
    values = [int(t) for t in texts if t.strip().isdigit()]
    return sum(values) / len(values) / 1000.0 if values else None


def parse_cpuinfo_mhz(text: str) -> float | None:
    """Fallback where cpufreq is absent (many VMs): mean of /proc/cpuinfo's `cpu MHz`."""
    values = [
        float(line.split(":")[1])
        for line in text.splitlines()
        if line.startswith("cpu MHz") and ":" in line
    ]
    return sum(values) / len(values) if values else None


class CpuSampler:
    name = "cpu"

    def __init__(self, proc_root: Path = Path("/proc"), sys_root: Path = Path("/sys")) -> None:
        self._proc = proc_root
        self._freq_files = sorted(
            sys_root.glob("devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq")
        )
        self._previous = self._read_times()

    def _read_times(self) -> tuple[CpuTimes, list[CpuTimes]] | None:
        text = read_text(self._proc / "stat")
        return parse_proc_stat(text) if text else None

    def sample(self) -> Reading:
        current = self._read_times()
        previous, self._previous = self._previous, current
        metrics: dict[str, object] = {"cpu_util_pct": None, "cpu_core_util_pct": None}
        if current is not None and previous is not None:
            metrics["cpu_util_pct"] = utilisation_pct(previous[0], current[0])
            if len(previous[1]) == len(current[1]):  # a core went offline: skip one interval
                metrics["cpu_core_util_pct"] = tuple(
                    utilisation_pct(b, a) for b, a in zip(previous[1], current[1], strict=True)
                )
        metrics["cpu_freq_mhz"] = self._freq_mhz()
        load = read_text(self._proc / "loadavg")
        one, five, fifteen = parse_loadavg(load) if load else (None, None, None)
        metrics |= {"load_avg_1m": one, "load_avg_5m": five, "load_avg_15m": fifteen}
        return Reading(metrics=metrics)  # type: ignore[arg-type]

    def _freq_mhz(self) -> float | None:
        if self._freq_files:
            return parse_freqs_khz([read_text(p) or "" for p in self._freq_files])
        info = read_text(self._proc / "cpuinfo")
        return parse_cpuinfo_mhz(info) if info else None

    def check(self) -> Availability:
        error = read_error(self._proc / "stat")
        if error:
            return Availability(self.name, False, error, required=True)
        cores = len(self._previous[1]) if self._previous else 0
        freq = "cpufreq" if self._freq_files else "/proc/cpuinfo"
        return Availability(self.name, True, f"{cores} cores; frequency from {freq}", True)
