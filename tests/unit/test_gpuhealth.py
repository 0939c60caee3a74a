"""GPU health verdicts: the table of signals, and that the worst finding wins."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.gpuhealth import Health, Sticky, judge, lost
from shared.messages import GpuSample
from shared.metrics import BY_NAME


@pytest.mark.parametrize(
    ("metrics", "health", "reason"),
    [
        ({}, "ok", ""),
        ({"gpu_xid_last": 0, "gpu_remap_pending": 0}, "ok", ""),
        ({"gpu_xid_last": 13}, "ok", ""),  # an application's fault
        ({"gpu_xid_last": 79}, "failed", "XID 79: fell off the bus"),
        ({"gpu_xid_last": 48}, "failed", "XID 48: double-bit ECC error"),
        ({"gpu_xid_last": 94}, "degraded", "XID 94: contained ECC"),
        ({"gpu_remap_failed": 1}, "failed", "row remapping failed"),
        ({"gpu_ecc_volatile_uncorrected": 3}, "failed", "uncorrectable ECC errors"),
        (
            {"gpu_ecc_volatile_uncorrected": 3, "gpu_remap_pending": 1},
            "degraded",
            "row remap pending: reset the GPU",
        ),
        ({"gpu_ecc_aggregate_uncorrected": 9}, "ok", ""),  # history, already repaired
        ({"gpu_retired_pages_pending": 1}, "degraded", "page retirement pending: reset the GPU"),
        ({"gpu_throttle_hw_slowdown": 1}, "degraded", "hardware slowdown"),
        ({"gpu_throttle_thermal": 1}, "degraded", "thermal clocks-down"),
        ({"gpu_throttle_power_cap": 1}, "ok", ""),  # the cap doing its job
        ({"gpu_xid_last": 94, "gpu_remap_failed": 1}, "failed", "row remapping failed"),
        ({"gpu_xid_last": 79, "gpu_throttle_thermal": 1}, "failed", "XID 79: fell off the bus"),
        (
            {"gpu_xid_last": 94, "gpu_throttle_thermal": 1},
            "degraded",
            "XID 94: contained ECC",
        ),
    ],
)
def test_verdicts(metrics, health, reason):
    verdict = judge(metrics)
    assert (verdict.health, verdict.reason) == (health, reason)


def test_pcie_replays_degrade_only_when_climbing_fast():
    assert judge({"gpu_pcie_replay_count": 5000}).health is Health.OK  # no previous: no rate
    assert judge({"gpu_pcie_replay_count": 150}, {"gpu_pcie_replay_count": 100}) == judge({})
    verdict = judge({"gpu_pcie_replay_count": 400}, {"gpu_pcie_replay_count": 100})
    assert verdict.reason == "PCIe replays climbing (300 in one interval)"
    assert verdict.health is Health.DEGRADED


def test_a_lost_gpu_is_failed_with_the_driver_error():
    assert (lost("GPU is lost").health, lost("GPU is lost").reason) == (
        Health.FAILED,
        "does not answer: GPU is lost",
    )


HEALTH_FIELDS = [m for m in BY_NAME if m.startswith("gpu_") and BY_NAME[m].integer]
RANK = {Health.OK: 0, Health.DEGRADED: 1, Health.FAILED: 2}


@given(
    st.dictionaries(st.sampled_from(HEALTH_FIELDS), st.none() | st.integers(0, 200)),
    st.dictionaries(st.sampled_from(HEALTH_FIELDS), st.none() | st.integers(0, 200)),
)
def test_any_metrics_give_a_wire_valid_verdict_no_better_than_each_signal(metrics, extra):
    verdict = judge(metrics | extra)
    GpuSample(index=0, uuid="GPU-x", metrics={}, health=verdict.health, reason=verdict.reason)
    assert (verdict.health is Health.OK) == (verdict.reason == "")
    for name, value in (metrics | extra).items():  # adding one more signal never heals
        alone = judge({name: value})
        assert RANK[verdict.health] >= RANK[alone.health] or (
            name == "gpu_ecc_volatile_uncorrected" and (metrics | extra).get("gpu_remap_pending")
        )


def test_sticky_shows_worse_at_once_and_better_only_after_the_hold():
    sticky = Sticky(hold_s=60)
    hot = judge({"gpu_throttle_thermal": 1})
    assert sticky.update(judge({}), 0).health is Health.OK
    assert sticky.update(hot, 1) == hot
    assert sticky.update(judge({}), 30) == hot  # clocks came back: not long enough
    assert sticky.update(hot, 50) == hot  # relapse: the hold starts again
    assert sticky.update(judge({}), 100) == hot
    assert sticky.update(judge({}), 110).health is Health.OK  # 60 s clean since 50
    dead = judge({"gpu_xid_last": 79})
    assert sticky.update(dead, 111) == dead
    assert sticky.update(hot, 112) == dead  # better than failed, too soon
