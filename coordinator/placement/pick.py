"""`dormouse pick`: where a stateless request (an inference call) should go now.

Least connections among awake, feasible nodes: the same filter, score and select stages as
job placement, without the queue or deadlines.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from coordinator.placement.filters import never_fits, rejection
from coordinator.placement.model import ClusterSnapshot, Power, Request, free_capacity
from coordinator.placement.score import least_connections
from coordinator.placement.select import NodeIndex


@dataclass(frozen=True, slots=True)
class Picked:
    node: str
    connections: int  # active jobs + service connections: the least-connections score
    jobs: int
    util_pct: float
    free_gpus: tuple[int, ...]


class Picker:
    """Built once per snapshot; each `pick` walks nodes in score order to the first fit."""

    def __init__(self, cluster: ClusterSnapshot) -> None:
        self._cluster = cluster
        awake = [n for n in cluster.nodes if n.power is Power.AWAKE]
        self._index = NodeIndex(awake, free_capacity(cluster))

    def pick(self, request: Request) -> Picked | str:
        """The chosen node, or why none qualifies."""
        node = self._index.first(request)
        if node is None:
            return self.why_none(request)
        free = self._index.free[node.name]
        return Picked(
            node.name,
            least_connections(node, free),
            free.jobs,
            node.util_pct,
            tuple(sorted(free.gpus)),
        )

    def why_none(self, request: Request) -> str:
        if not self._cluster.nodes:
            return "no nodes known"
        free = free_capacity(self._cluster)
        now = Counter(rejection(request, n, free[n.name]) for n in self._cluster.nodes)
        if all(never_fits(request, n) for n in self._cluster.nodes):
            return "no node in the fleet could ever take this request"
        parts = ", ".join(f"{count} {reason}" for reason, count in sorted(now.items()))
        return f"no awake node has room now ({parts})"


def pick(request: Request, cluster: ClusterSnapshot) -> Picked | str:
    return Picker(cluster).pick(request)
