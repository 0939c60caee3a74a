"""One sampling pass: every sampler's reading merged into one `Sample`."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from agent.logonce import LogOnce
from agent.samplers.base import Sampler
from shared.messages import GpuSample, Sample

log = logging.getLogger(__name__)
_once = LogOnce(log)


def node_power_w(rapl_power_w: float | None, gpus: Sequence[GpuSample]) -> float | None:
    """RAPL plus every GPU's board power, from whatever is measured; None if nothing is."""
    parts = [rapl_power_w, *(g.metrics.get("gpu_power_w") for g in gpus)]
    known = [p for p in parts if p is not None]
    return sum(known) if known else None


def take_sample(samplers: Sequence[Sampler], ts: float) -> Sample:
    metrics: dict[str, object] = {}
    gpus: tuple[GpuSample, ...] = ()
    for sampler in samplers:
        try:
            reading = sampler.sample()
        except (OSError, ValueError) as exc:  # a kernel file changed shape: skip, say once
            _once.warning((sampler.name, type(exc)), "sampler %s failed: %s", sampler.name, exc)
            continue
        metrics |= reading.metrics
        gpus += reading.gpus
    metrics["power_w"] = node_power_w(metrics.get("rapl_power_w"), gpus)  # type: ignore[arg-type]
    return Sample(ts=ts, metrics=metrics, gpus=gpus)
