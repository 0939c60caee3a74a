"""GPUs held and left idle, found while it happens (pure: snapshots and a clock in).

A running job whose GPUs' mean utilisation stays under `util_pct` in every sample for
`after_s` is wasteful from then on. The watch keeps, per job, the time of the first sample of
the current low run; a sample at or over the line ends the run. A node that sends nothing
changes nothing (no sample is not evidence of idleness), and a job without GPUs is never
watched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Held:
    """A running job's GPUs, as the watch reads it."""

    job_id: str
    account: str
    node: str
    gpus: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class GpuReading:
    """A node's newest sample: when, and each GPU's utilisation (%)."""

    ts: float
    util_pct: Mapping[int, float]


@dataclass(frozen=True, slots=True)
class Waste:
    job_id: str
    account: str
    node: str
    gpus: int
    since: float  # the first sample of the low run
    util_pct: float  # the newest sample's mean over its GPUs

    def note(self, now: float) -> str:
        minutes = (now - self.since) / 60
        return (
            f"{self.gpus} GPU{'s' * (self.gpus != 1)} on {self.node} at {self.util_pct:.1f} % "
            f"for {minutes:.0f} min (account {self.account or '-'})"
        )


class WasteWatch:
    def __init__(self, util_pct: float, after_s: float) -> None:
        self.util_pct, self.after_s = util_pct, after_s
        self._low: dict[str, tuple[float, float]] = {}  # job id -> (low since, newest util)
        self._seen: dict[str, float] = {}  # job id -> ts of the sample last read for it

    def observe(
        self, running: Iterable[Held], readings: Mapping[str, GpuReading], now: float
    ) -> list[Waste]:
        """The jobs wasteful now; jobs not in `running` are forgotten."""
        jobs = [j for j in running if j.gpus]
        live = {j.job_id for j in jobs}
        for gone in (self._low.keys() | self._seen.keys()) - live:
            self._low.pop(gone, None)
            self._seen.pop(gone, None)
        found = []
        for job in jobs:
            self._read(job, readings.get(job.node))
            low = self._low.get(job.job_id)
            if low is not None and now - low[0] >= self.after_s:
                found.append(Waste(job.job_id, job.account, job.node, len(job.gpus), *low))
        return found

    def _read(self, job: Held, reading: GpuReading | None) -> None:
        if reading is None or reading.ts <= self._seen.get(job.job_id, -1.0):
            return  # nothing new from its node
        known = [reading.util_pct[i] for i in job.gpus if i in reading.util_pct]
        if not known:
            return
        self._seen[job.job_id] = reading.ts
        util = sum(known) / len(known)
        if util >= self.util_pct:
            self._low.pop(job.job_id, None)
        else:
            since = self._low.get(job.job_id, (reading.ts, util))[0]
            self._low[job.job_id] = (since, util)


def wasted_gpus(found: Iterable[Waste]) -> dict[str, int]:
    """GPUs held idle, by account: `dormouse_wasted_gpus{account=...}`."""
    by: dict[str, int] = {}
    for waste in found:
        by[waste.account] = by.get(waste.account, 0) + waste.gpus
    return by
