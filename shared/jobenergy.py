"""Each running job's energy over one sampling interval, pure.

Slurm's ConsumedEnergy charges every job the whole node's energy over its run, right only for
exclusive jobs. Here a job is charged:

* its own GPUs: each GPU's NVML total-energy counter delta (board power x time where the
  counter is missing or went backwards after a driver reload);
* a share of the host: RAPL package + DRAM energy (counter deltas; the RAPL power, or the node
  power less the GPUs', times the interval where counters are missing), split by allocated
  CPUs: a job gets `cpus / max(node CPUs, CPUs allocated)` of it. The unallocated share is
  nobody's: idle cost stays with the node, not with whoever happens to run.

So the jobs' charges of an interval never add up to more than the node's energy of the same
interval (`node_energy`): GPUs are disjoint between jobs (a GPU two jobs claim is split
between them) and host shares add up to at most one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from shared.messages import GpuSample, Sample

RAPL_COUNTERS = ("rapl_package_energy_j", "rapl_dram_energy_j")


@dataclass(frozen=True, slots=True)
class JobShare:
    """What a job was given on the node."""

    gpus: tuple[int, ...]
    cpus: int


def _delta(before: float | None, after: float | None) -> float | None:
    if before is None or after is None or after < before:
        return None
    return after - before


def _mean(before: float | None, after: float | None) -> float | None:
    known = [v for v in (before, after) if v is not None]
    return sum(known) / len(known) if known else None


def gpu_energy(before: Sample, after: Sample) -> dict[int, float]:
    """GPU index -> joules over the interval, for the GPUs sampled at both ends."""
    seconds = after.ts - before.ts
    earlier: dict[int, GpuSample] = {g.index: g for g in before.gpus}
    found = {}
    for gpu in after.gpus:
        old = earlier.get(gpu.index)
        if old is None or old.uuid != gpu.uuid:
            continue
        joules = _delta(old.metrics.get("gpu_energy_j"), gpu.metrics.get("gpu_energy_j"))
        if joules is None:
            watts = _mean(old.metrics.get("gpu_power_w"), gpu.metrics.get("gpu_power_w"))
            joules = None if watts is None else watts * seconds
        if joules is not None:
            found[gpu.index] = joules
    return found


def host_energy(before: Sample, after: Sample) -> float:
    """The node less its GPUs over the interval (CPU packages and DRAM): 0 when unmeasured."""
    deltas = [_delta(before.metrics.get(c), after.metrics.get(c)) for c in RAPL_COUNTERS]
    if any(d is not None for d in deltas):
        return sum(d for d in deltas if d is not None)
    seconds = after.ts - before.ts
    rapl_w = _mean(before.metrics.get("rapl_power_w"), after.metrics.get("rapl_power_w"))
    if rapl_w is not None:
        return rapl_w * seconds
    node_w = after.metrics.get("power_w")
    if node_w is None:
        return 0.0
    gpus_w = sum(g.metrics.get("gpu_power_w") or 0.0 for g in after.gpus)
    return max(node_w - gpus_w, 0.0) * seconds


def node_energy(before: Sample, after: Sample) -> float:
    """The whole node over the interval, as `charge` divides it."""
    return host_energy(before, after) + sum(gpu_energy(before, after).values())


def charge(
    before: Sample, after: Sample, jobs: Mapping[str, JobShare], node_cpus: int
) -> dict[str, float]:
    """Job id -> joules of the interval from `before` to `after`."""
    if after.ts <= before.ts or not jobs:
        return dict.fromkeys(jobs, 0.0)
    gpus = gpu_energy(before, after)
    claims = Counter(i for share in jobs.values() for i in set(share.gpus))
    host = host_energy(before, after)
    cpus = max(node_cpus, sum(s.cpus for s in jobs.values()), 1)
    return {
        job_id: sum(gpus.get(i, 0.0) / claims[i] for i in set(share.gpus))
        + host * share.cpus / cpus
        for job_id, share in jobs.items()
    }


def gpu_util(sample: Sample, gpus: tuple[int, ...]) -> float | None:
    """The mean utilisation (%) of a job's GPUs in one sample; None when it has none, or
    none of them reports utilisation."""
    wanted = set(gpus)
    known = [
        u
        for g in sample.gpus
        if g.index in wanted and (u := g.metrics.get("gpu_util_pct")) is not None
    ]
    return sum(known) / len(known) if known else None
