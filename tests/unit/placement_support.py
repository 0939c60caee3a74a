"""Small builders for placement tests."""

from __future__ import annotations

from coordinator.placement.model import Allocation, Job, NodeSnapshot, Power, Request

GIB = 2**30


def node(
    name: str,
    *,
    power: Power = Power.AWAKE,
    cpus: int = 8,
    mem_gib: int = 32,
    gpus: int = 0,
    connections: int = 0,
    util: float = 0.0,
    labels: dict[str, str] | None = None,
    resume_s: float = 30.0,
    drained: bool = False,
    unusable: tuple[int, ...] = (),
    degraded: tuple[int, ...] = (),
) -> NodeSnapshot:
    return NodeSnapshot(
        name=name,
        power=power,
        cpus=cpus,
        mem_bytes=mem_gib * GIB,
        gpus=tuple(range(gpus)),
        labels=labels or {},
        connections=connections,
        util_pct=util,
        resume_latency_s=resume_s,
        drained=drained,
        unusable_gpus=frozenset(unusable),
        degraded_gpus=frozenset(degraded),
    )


def job(
    job_id: str,
    *,
    cpus: int = 1,
    mem_gib: int = 1,
    gpus: int = 0,
    runtime_s: float = 60.0,
    submitted_at: float = 0.0,
    deadline: float | None = None,
    priority: int = 0,
    labels: dict[str, str] | None = None,
) -> Job:
    return Job(
        id=job_id,
        request=Request(cpus=cpus, mem_bytes=mem_gib * GIB, gpus=gpus, labels=labels or {}),
        runtime_s=runtime_s,
        submitted_at=submitted_at,
        deadline=deadline,
        priority=priority,
    )


def alloc(
    job_id: str, on: str, *, cpus: int = 1, mem_gib: int = 1, gpus=(), ends_at=None
) -> Allocation:
    return Allocation(
        job_id=job_id,
        node=on,
        cpus=cpus,
        mem_bytes=mem_gib * GIB,
        gpus=tuple(gpus),
        ends_at=ends_at,
    )
