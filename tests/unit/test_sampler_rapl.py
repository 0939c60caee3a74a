from __future__ import annotations

import pytest

from agent.samplers.rapl import RaplSampler, discover_zones, energy_delta_uj, zone_domain
from tests.unit.samplers_support import host_tree

PKG = "class/powercap/intel-rapl:0/energy_uj"
DRAM = "class/powercap/intel-rapl:0:0/energy_uj"
PKG_MAX = 262143328850


class Tick:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_zones_package_and_dram_only(tmp_path):
    _, sys = host_tree(tmp_path)
    assert sorted(z.domain for z in discover_zones(sys)) == ["dram", "package"]
    assert zone_domain("package-1") == "package"
    assert zone_domain("core") is None


def test_energy_accumulates_and_power_is_over_the_interval(tmp_path):
    _, sys = host_tree(tmp_path)
    tick = Tick()
    sampler = RaplSampler(sys, tick)
    (sys / PKG).write_text(str(1_000_000 + 60_000_000))  # +60 J
    (sys / DRAM).write_text(str(500_000 + 20_000_000))  # +20 J
    tick.t += 2.0
    metrics = sampler.sample().metrics
    assert metrics["rapl_package_energy_j"] == pytest.approx(60.0)
    assert metrics["rapl_dram_energy_j"] == pytest.approx(20.0)
    assert metrics["rapl_power_w"] == pytest.approx(40.0)


def test_counter_wrap_is_handled(tmp_path):
    _, sys = host_tree(tmp_path)
    tick = Tick()
    (sys / PKG).write_text(str(PKG_MAX - 1_000_000))  # 1 J before the wrap
    sampler = RaplSampler(sys, tick)
    (sys / PKG).write_text("2000000")  # wrapped, then 2 J more
    tick.t += 1.0
    metrics = sampler.sample().metrics
    assert metrics["rapl_package_energy_j"] == pytest.approx(3.0, abs=1e-5)
    assert metrics["rapl_package_energy_j"] >= 0
    assert energy_delta_uj(10, 5, 10) == 6


def test_unreadable_counter_is_null_with_reason(tmp_path):
    _, sys = host_tree(tmp_path)
    for path in (sys / PKG, sys / DRAM):
        path.unlink()
        path.mkdir()  # reading a directory fails like a root-only file does
    sampler = RaplSampler(sys, Tick())
    metrics = sampler.sample().metrics
    assert metrics == {
        "rapl_package_energy_j": None,
        "rapl_dram_energy_j": None,
        "rapl_power_w": None,
    }
    check = sampler.check()
    assert not check.ok
    assert "needs root" in check.detail


def test_no_rapl_at_all(tmp_path):
    sampler = RaplSampler(tmp_path, Tick())
    assert sampler.sample().metrics["rapl_power_w"] is None
    assert sampler.check().detail == "no RAPL zones under /sys/class/powercap"
