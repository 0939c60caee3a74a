"""`dormouse pick`: where a stateless request (an inference call) should go now.

Least connections among awake, feasible nodes: the same filter, score and select stages as
job placement, without the queue or deadlines.
"""

from __future__ import annotations

from dataclasses import dataclass

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
        free = free_capacity(cluster)
        awake = [n for n in cluster.nodes if n.power is Power.AWAKE]
        self._index = NodeIndex(awake, free)
        self._fleet = NodeIndex(cluster.nodes, dict(free))  # every node, for the reason

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
        """From node shapes, not node by node, so a refusal is as quick as an answer."""
        if not len(self._fleet):
            return "no nodes known"
        if not self._fleet.could_ever_take(request):
            return "no node in the fleet could ever take this request"
        could = self._index.could_ever_take(request)
        return f"no awake node has room now ({could} of {len(self._index)} awake could take it)"


def pick(request: Request, cluster: ClusterSnapshot) -> Picked | str:
    return Picker(cluster).pick(request)
