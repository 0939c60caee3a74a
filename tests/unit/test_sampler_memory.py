from __future__ import annotations

from agent.samplers.memory import MemorySampler, memory_metrics, parse_meminfo
from tests.unit.samplers_support import host_tree


def test_meminfo_in_bytes(tmp_path):
    proc, _ = host_tree(tmp_path)
    metrics = MemorySampler(proc).sample().metrics
    assert metrics == {
        "mem_total_bytes": 16384000 * 1024,
        "mem_available_bytes": 4096000 * 1024,
        "mem_used_bytes": (16384000 - 4096000) * 1024,
        "swap_used_bytes": (2048000 - 1536000) * 1024,
    }


def test_unitless_fields_are_kept_as_counts():
    assert parse_meminfo("HugePages_Total:       4\n") == {"HugePages_Total": 4}


def test_old_kernels_without_memavailable_report_no_used():
    metrics = memory_metrics(parse_meminfo("MemTotal: 100 kB\nMemFree: 50 kB\n"))
    assert metrics["mem_total_bytes"] == 102400
    assert metrics["mem_used_bytes"] is None


def test_missing_meminfo(tmp_path):
    sampler = MemorySampler(tmp_path)
    assert set(sampler.sample().metrics.values()) == {None}
    assert not sampler.check().ok
