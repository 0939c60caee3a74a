from __future__ import annotations

import pytest

from agent.samplers.cpu import (
    CpuSampler,
    CpuTimes,
    parse_cpuinfo_mhz,
    parse_freqs_khz,
    parse_loadavg,
    parse_proc_stat,
    utilisation_pct,
)
from tests.unit.samplers_support import host_tree

STAT_LATER = """cpu  1300 0 600 8600 500 0 0 0 0 0
cpu0 700 0 300 4200 250 0 0 0 0 0
cpu1 600 0 300 4400 250 0 0 0 0 0
"""


def test_parse_proc_stat_excludes_idle_and_iowait():
    total, cores = parse_proc_stat("cpu  10 1 5 100 4 1 1 2 7 0\ncpu0 10 1 5 100 4 1 1 2 7 0\n")
    assert total == CpuTimes(busy=20, total=124)  # guest (7) is already inside user
    assert cores == [total]


def test_parse_proc_stat_needs_the_aggregate_line():
    with pytest.raises(ValueError, match="no aggregate cpu line"):
        parse_proc_stat("intr 1 2 3\n")


def test_utilisation_is_busy_share_of_elapsed_and_clamped():
    assert utilisation_pct(CpuTimes(0, 0), CpuTimes(25, 100)) == 25.0
    assert utilisation_pct(CpuTimes(5, 5), CpuTimes(5, 5)) == 0.0  # no time passed
    assert utilisation_pct(CpuTimes(50, 100), CpuTimes(40, 200)) == 0.0  # counter went back


def test_sampler_reports_utilisation_since_the_previous_sample(tmp_path):
    proc, sys = host_tree(tmp_path)
    sampler = CpuSampler(proc, sys)
    (proc / "stat").write_text(STAT_LATER)
    metrics = sampler.sample().metrics
    assert metrics["cpu_util_pct"] == pytest.approx(100 * 400 / 1000)
    assert metrics["cpu_core_util_pct"] == pytest.approx((100 * 250 / 450, 100 * 150 / 550))
    assert metrics["cpu_freq_mhz"] == 3000.0  # mean of 2400 and 3600 MHz from cpufreq
    assert (metrics["load_avg_1m"], metrics["load_avg_5m"], metrics["load_avg_15m"]) == (
        0.5,
        1.25,
        2.0,
    )


def test_a_core_going_offline_skips_per_core_values_once(tmp_path):
    proc, sys = host_tree(tmp_path)
    sampler = CpuSampler(proc, sys)
    (proc / "stat").write_text("\n".join(STAT_LATER.splitlines()[:2]) + "\n")
    metrics = sampler.sample().metrics
    assert metrics["cpu_core_util_pct"] is None
    assert metrics["cpu_util_pct"] is not None


def test_frequency_falls_back_to_cpuinfo_without_cpufreq(tmp_path):
    proc, sys = host_tree(tmp_path)
    for path in sys.glob("devices/system/cpu/cpu*/cpufreq/scaling_cur_freq"):
        path.unlink()
    assert CpuSampler(proc, sys).sample().metrics["cpu_freq_mhz"] == 2500.0


def test_missing_proc_gives_no_data_and_a_failed_check(tmp_path):
    sampler = CpuSampler(tmp_path / "none", tmp_path / "none")
    metrics = sampler.sample().metrics
    assert metrics["cpu_util_pct"] is None
    assert metrics["load_avg_1m"] is None
    check = sampler.check()
    assert (check.ok, check.required) == (False, True)
    assert "stat" in check.detail


def test_parsers():
    assert parse_loadavg("0.1 0.2 0.3 1/2 3") == (0.1, 0.2, 0.3)
    assert parse_freqs_khz(["1000000", "garbage", "3000000"]) == 2000.0
    assert parse_freqs_khz([]) is None
    assert parse_cpuinfo_mhz("model name : x\n") is None
