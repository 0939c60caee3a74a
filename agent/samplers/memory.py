"""Memory: total, used, available and swap in use, from /proc/meminfo."""

from __future__ import annotations

from pathlib import Path

from agent.samplers.base import Availability, Reading, read_error, read_text


def parse_meminfo(text: str) -> dict[str, int]:
    """Fields of /proc/meminfo in bytes (the file says kB and means KiB)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            scale = 1024 if len(parts) > 1 and parts[1] == "kB" else 1
            values[key] = int(parts[0]) * scale
    return values


def memory_metrics(info: dict[str, int]) -> dict[str, int | None]:
    total = info.get("MemTotal")
    available = info.get("MemAvailable")
    swap_total, swap_free = info.get("SwapTotal"), info.get("SwapFree")
    return {
        "mem_total_bytes": total,
        "mem_available_bytes": available,
        "mem_used_bytes": None if total is None or available is None else total - available,
        "swap_used_bytes": None
        if swap_total is None or swap_free is None
        else swap_total - swap_free,
    }


class MemorySampler:
    name = "memory"

    def __init__(self, proc_root: Path = Path("/proc")) -> None:
        self._path = proc_root / "meminfo"

    def sample(self) -> Reading:
        text = read_text(self._path)
        return Reading(metrics=memory_metrics(parse_meminfo(text) if text else {}))  # type: ignore[arg-type]

    def total_bytes(self) -> int:
        return self.sample().metrics.get("mem_total_bytes") or 0  # type: ignore[return-value]

    def check(self) -> Availability:
        error = read_error(self._path)
        if error:
            return Availability(self.name, False, error, required=True)
        return Availability(self.name, True, f"{self.total_bytes() / 2**30:.1f} GiB", True)
