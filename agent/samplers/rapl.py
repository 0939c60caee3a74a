"""Power: RAPL package and DRAM energy counters from /sys/class/powercap.

The kernel's counters are in µJ and wrap at `max_energy_range_uj`; this sampler keeps a
monotonic total in joules per domain (from agent start) and the power over each interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.samplers.base import Availability, Reading, read_error, read_text

DOMAINS = {"package": "rapl_package_energy_j", "dram": "rapl_dram_energy_j"}


@dataclass(frozen=True, slots=True)
class RaplZone:
    path: Path
    domain: str  # "package" or "dram"
    max_range_uj: int


def energy_delta_uj(previous: int, current: int, max_range_uj: int) -> int:
    """The energy between two readings, across at most one wrap of the counter."""
    return (current - previous) % (max_range_uj + 1)


def zone_domain(name: str) -> str | None:
    """`package-0` -> package, `dram` -> dram; core, uncore and psys are not summed."""
    name = name.strip()
    if name.startswith("package"):
        return "package"
    return "dram" if name == "dram" else None


def discover_zones(sys_root: Path) -> list[RaplZone]:
    zones = []
    for path in sorted((sys_root / "class/powercap").glob("intel-rapl:*")):
        domain = zone_domain(read_text(path / "name") or "")
        max_range = (read_text(path / "max_energy_range_uj") or "").strip()
        if domain is not None and max_range.isdigit():
            zones.append(RaplZone(path, domain, int(max_range)))
    return zones


class RaplSampler:
    name = "power"

    def __init__(
        self, sys_root: Path = Path("/sys"), monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._zones = discover_zones(sys_root)
        self._monotonic = monotonic
        self._totals_j = dict.fromkeys(DOMAINS, 0.0)
        self._last_uj: dict[Path, int | None] = {z.path: self._read_uj(z) for z in self._zones}
        self._last_t = monotonic()

    @staticmethod
    def _read_uj(zone: RaplZone) -> int | None:
        text = (read_text(zone.path / "energy_uj") or "").strip()
        return int(text) if text.isdigit() else None

    def sample(self) -> Reading:
        now = self._monotonic()
        interval_j = dict.fromkeys(DOMAINS, 0.0)
        readable = dict.fromkeys(DOMAINS, False)
        for zone in self._zones:
            current, previous = self._read_uj(zone), self._last_uj[zone.path]
            self._last_uj[zone.path] = current
            if current is None:
                continue
            readable[zone.domain] = True
            if previous is not None:
                interval_j[zone.domain] += (
                    energy_delta_uj(previous, current, zone.max_range_uj) / 1e6
                )
        elapsed, self._last_t = now - self._last_t, now
        metrics: dict[str, float | None] = {}
        for domain, metric in DOMAINS.items():
            self._totals_j[domain] += interval_j[domain]
            metrics[metric] = self._totals_j[domain] if readable[domain] else None
        any_readable = any(readable.values())
        power = sum(interval_j.values()) / elapsed if any_readable and elapsed > 0 else None
        metrics["rapl_power_w"] = power
        return Reading(metrics=metrics)  # type: ignore[arg-type]

    def check(self) -> Availability:
        if not self._zones:
            return Availability(self.name, False, "no RAPL zones under /sys/class/powercap")
        error = read_error(self._zones[0].path / "energy_uj")
        if error:
            return Availability(self.name, False, f"{error} (RAPL energy needs root)")
        domains = sorted({z.domain for z in self._zones})
        return Availability(
            self.name, True, f"RAPL {', '.join(domains)} in {len(self._zones)} zones"
        )
