"""A GPU's health from its health metrics, pure: ok, degraded or failed, with the reason.

The agent derives it each sample (the signals are on the node; the reasons are worded once,
here) and the coordinator acts on it: no new work on a failed GPU, a degraded one only when
nothing healthy fits. The rules follow NVIDIA's XID catalogue and its row-remapping guidance:

* failed: a fatal XID (fell off the bus, double-bit ECC, uncontained ECC, GSP errors), a row
  remap that failed, or uncorrectable ECC errors since driver load with no remap pending to
  repair them; the GPU does not answer NVML at all.
* degraded: a remap or page retirement waiting for a GPU reset, a contained or high-rate ECC
  XID, hardware slowdown or thermal clocks-down, or PCIe replays climbing fast.

An XID is an event, not a level: the agent keeps the last one seen (`gpu_xid_last`) until it
restarts, so a GPU that fell off the bus stays failed until the node is repaired (a reboot or
driver reload restarts the agent with it). Levels that come and go (clocks held down under
load) would flap the verdict sample by sample, so `Sticky` shows a worse verdict at once and
a better one only after `HOLD_S` without relapse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Health(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    FAILED = "failed"


FATAL_XIDS: dict[int, str] = {
    48: "double-bit ECC error",
    74: "NVLink error",
    79: "fell off the bus",
    95: "uncontained ECC error",
    119: "GSP RPC timeout",
    120: "GSP error",
}
DEGRADING_XIDS: dict[int, str] = {
    63: "ECC page retirement or row remap recorded",
    64: "ECC page retirement or row remap failed to record",
    92: "high single-bit ECC error rate",
    94: "contained ECC",
}
PCIE_REPLAYS_PER_SAMPLE = 100  # more new replays than this in one interval: a bad link
HOLD_S = 60.0  # a GPU is judged better only after this long without relapse
RANK = {Health.OK: 0, Health.DEGRADED: 1, Health.FAILED: 2}


@dataclass(frozen=True, slots=True)
class Verdict:
    health: Health
    reason: str = ""


OK = Verdict(Health.OK)


def _xid(code: int) -> Verdict | None:
    if code in FATAL_XIDS:
        return Verdict(Health.FAILED, f"XID {code}: {FATAL_XIDS[code]}")
    if code in DEGRADING_XIDS:
        return Verdict(Health.DEGRADED, f"XID {code}: {DEGRADING_XIDS[code]}")
    return None


def _failed(m: Mapping[str, Any]) -> str | None:
    if m.get("gpu_remap_failed"):
        return "row remapping failed"
    if (m.get("gpu_ecc_volatile_uncorrected") or 0) > 0 and not m.get("gpu_remap_pending"):
        return "uncorrectable ECC errors"
    return None


def _degraded(m: Mapping[str, Any], previous: Mapping[str, Any] | None) -> str | None:
    if m.get("gpu_remap_pending"):
        return "row remap pending: reset the GPU"
    if m.get("gpu_retired_pages_pending"):
        return "page retirement pending: reset the GPU"
    if m.get("gpu_throttle_hw_slowdown"):
        return "hardware slowdown"
    if m.get("gpu_throttle_thermal"):
        return "thermal clocks-down"
    replays, before = m.get("gpu_pcie_replay_count"), (previous or {}).get("gpu_pcie_replay_count")
    if replays is not None and before is not None and replays - before > PCIE_REPLAYS_PER_SAMPLE:
        return f"PCIe replays climbing ({replays - before} in one interval)"
    return None


def judge(metrics: Mapping[str, Any], previous: Mapping[str, Any] | None = None) -> Verdict:
    """The GPU's health from one sample's metrics (and the one before, for rates). The worst
    finding wins; an XID that is neither fatal nor degrading (an application's fault) is
    ignored."""
    xid = _xid(metrics.get("gpu_xid_last") or 0)
    if xid is not None and xid.health is Health.FAILED:
        return xid
    if (reason := _failed(metrics)) is not None:
        return Verdict(Health.FAILED, reason)
    if xid is not None:
        return xid
    if (reason := _degraded(metrics, previous)) is not None:
        return Verdict(Health.DEGRADED, reason)
    return OK


def lost(error: str) -> Verdict:
    """A GPU that no longer answers NVML."""
    return Verdict(Health.FAILED, f"does not answer: {error}")


class Sticky:
    """One GPU's shown verdict: a worse (or equally bad) one shows at once, a better one only
    once the shown one has not been seen for `hold_s` (times from the caller's clock)."""

    def __init__(self, hold_s: float = HOLD_S) -> None:
        self._hold_s = hold_s
        self._shown = OK
        self._seen_at = float("-inf")  # when the shown verdict was last judged

    def update(self, verdict: Verdict, now: float) -> Verdict:
        if RANK[verdict.health] >= RANK[self._shown.health] or now - self._seen_at >= self._hold_s:
            self._shown, self._seen_at = verdict, now
        return self._shown
