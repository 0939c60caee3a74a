"""The frozen snapshot placement reads: nodes, what is allocated on them, and jobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

NO_GPUS: frozenset[int] = frozenset()


class Power(StrEnum):
    """What placement needs to know of a node's state."""

    AWAKE = "awake"  # can start work now
    ASLEEP = "asleep"  # can be woken, after its resume latency
    WAKING = "waking"  # a wake was sent: its capacity comes back without another
    UNAVAILABLE = "unavailable"  # offline, failed, going to sleep or waking: not now


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """Resources a job or a stateless request needs; labels must all match the node's."""

    cpus: int = 0
    mem_bytes: int = 0
    gpus: int = 0
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    id: str
    request: Request
    runtime_s: float  # the user's estimate
    submitted_at: float
    deadline: float | None = None
    priority: int = 0  # higher first, after the deadline


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSnapshot:
    name: str
    power: Power
    cpus: int
    mem_bytes: int
    gpus: tuple[int, ...] = ()  # GPU indices
    labels: dict[str, str] = field(default_factory=dict)
    connections: int = 0  # established connections on the node's service ports
    util_pct: float = 0.0  # CPU utilisation, the tie-break
    resume_latency_s: float = 0.0
    drained: bool = False  # an operator's `dormouse drain`: no new work
    unusable_gpus: frozenset[int] = NO_GPUS  # failed or drained: never handed out
    degraded_gpus: frozenset[int] = NO_GPUS  # handed out only when nothing healthy fits
    commands_refused: str | None = None  # why its agent cannot verify commands (no key)


@dataclass(frozen=True, slots=True, kw_only=True)
class Allocation:
    """A job placed or running on a node: its resources are taken until it ends."""

    job_id: str
    node: str
    cpus: int
    mem_bytes: int
    gpus: tuple[int, ...] = ()
    ends_at: float | None = None  # expected end (start + runtime estimate), if known


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    nodes: tuple[NodeSnapshot, ...]
    allocations: tuple[Allocation, ...] = ()


class Free(NamedTuple):
    """What is left on a node, and how many jobs hold the rest. (A named tuple, not a
    dataclass: a pass makes one per node and per placement, and tuples are cheap.)"""

    cpus: int
    mem_bytes: int
    gpus: frozenset[int]
    jobs: int = 0

    def minus(self, cpus: int, mem_bytes: int, gpus: tuple[int, ...]) -> Free:
        return Free(
            self.cpus - cpus, self.mem_bytes - mem_bytes, self.gpus - set(gpus), self.jobs + 1
        )


def free_capacity(cluster: ClusterSnapshot) -> dict[str, Free]:
    """Capacity minus every allocation (placed jobs that have not started count too)."""
    free = {
        n.name: Free(n.cpus, n.mem_bytes, frozenset(n.gpus) if n.gpus else NO_GPUS)
        for n in cluster.nodes
    }
    for alloc in cluster.allocations:
        if alloc.node in free:
            free[alloc.node] = free[alloc.node].minus(alloc.cpus, alloc.mem_bytes, alloc.gpus)
    return free
