"""The spool sampler: how many samples memory holds because the spool file fails."""

from __future__ import annotations

from agent.samplers.spool import SpoolSampler


def test_it_reports_what_memory_holds_and_check_fails_while_it_holds_any():
    held = [0]
    sampler = SpoolSampler(lambda: held[0])
    assert sampler.sample().metrics == {"spool_memory_samples": 0}
    assert sampler.check().ok
    held[0] = 42
    assert sampler.sample().metrics == {"spool_memory_samples": 42}
    assert not sampler.check().ok
    assert "42 samples held in memory" in sampler.check().detail
