"""From live state to the frozen snapshot placement reads, pure.

Used by the daemon (registry views) and by the CLI (the same views, loaded from the store),
so `dormouse submit` and `dormouse pick` answer from what the coordinator last saw.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from coordinator.core import tick
from coordinator.core.jobstate import ON_NODE, JobRecord
from coordinator.core.registry import NodeView
from coordinator.core.tick import Shape
from coordinator.placement.model import ClusterSnapshot, NodeSnapshot
from shared.messages import Hello


def shape_of(hello: Hello) -> Shape:
    return Shape(
        cpus=hello.cpus,
        mem_bytes=hello.mem_total_bytes,
        gpus=tuple(g.index for g in hello.gpus),
        labels=hello.labels,
    )


def node_snapshot(view: NodeView, resume_latency_s: float = 0.0) -> NodeSnapshot | None:
    """None for a node that has not said hello yet: its capacity is unknown."""
    if view.hello is None:
        return None
    return tick.node_snapshot(
        view.name,
        view.state,
        shape_of(view.hello),
        connections=int(view.latest.get("connections") or 0),
        util_pct=float(view.latest.get("cpu_util_pct") or 0.0),
        resume_latency_s=resume_latency_s,
    )


def cluster_snapshot(
    views: Iterable[NodeView],
    jobs: Iterable[JobRecord],
    resume_latency: Callable[[str], float] = lambda _: 0.0,
) -> ClusterSnapshot:
    """`resume_latency` gives each node's expected resume time (learned from its wakes)."""
    snapshots = (node_snapshot(v, resume_latency(v.name)) for v in views)
    nodes = tuple(n for n in snapshots if n is not None)
    allocations = tuple(j.allocation() for j in jobs if j.state in ON_NODE and j.node)
    return ClusterSnapshot(nodes, allocations)
