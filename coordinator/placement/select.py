"""Stage 5, select: the best-scoring feasible node, and the GPU indices it hands out.

`select` is the definition (filter, then the lowest score); `NodeIndex` is the same choice
kept fast for many requests in one pass: nodes stay sorted by score, a placement re-sorts
only the node it changed, and the first feasible node in order is the answer.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from typing import Any

from coordinator.placement.filters import rejection
from coordinator.placement.model import Free, NodeSnapshot, Request
from coordinator.placement.score import score


def select(
    request: Request, nodes: Iterable[NodeSnapshot], free: dict[str, Free]
) -> NodeSnapshot | None:
    feasible = [n for n in nodes if rejection(request, n, free[n.name]) is None]
    return min(feasible, key=lambda n: score(n, free[n.name]), default=None)


def assign_gpus(free: Free, count: int) -> tuple[int, ...]:
    """The lowest free indices: deterministic, and never one already handed out."""
    if count > len(free.gpus):
        raise ValueError(f"{count} GPUs asked, {len(free.gpus)} free")
    return tuple(sorted(free.gpus)[:count])


class NodeIndex:
    """Nodes in score order over a `free` map that this index alone updates during a pass."""

    def __init__(self, nodes: Iterable[NodeSnapshot], free: dict[str, Free]) -> None:
        self._nodes = {n.name: n for n in nodes}
        self.free = free
        self._order: list[tuple[Any, ...]] = sorted(self._key(n) for n in self._nodes.values())
        self._failed: list[Request] = []  # free only shrinks in a pass: no bigger ask can fit

    def __len__(self) -> int:
        return len(self._nodes)

    def _key(self, node: NodeSnapshot) -> tuple[Any, ...]:
        return (*score(node, self.free[node.name]), node.name)

    def first(
        self, request: Request, accept: Callable[[NodeSnapshot], bool] | None = None
    ) -> NodeSnapshot | None:
        """What `select` would answer (restricted to nodes `accept` allows)."""
        if accept is None and any(_covers(request, failed) for failed in self._failed):
            return None
        for key in self._order:
            node = self._nodes[key[-1]]
            if rejection(request, node, self.free[node.name]) is None and (
                accept is None or accept(node)
            ):
                return node
        if accept is None:
            self._failed.append(request)
        return None

    def take(self, node: NodeSnapshot, request: Request) -> tuple[int, ...]:
        """Allocate `request` on `node`; returns the GPU indices it gets."""
        del self._order[bisect.bisect_left(self._order, self._key(node))]
        gpus = assign_gpus(self.free[node.name], request.gpus)
        self.free[node.name] = self.free[node.name].minus(request.cpus, request.mem_bytes, gpus)
        bisect.insort(self._order, self._key(node))
        return gpus


def _covers(request: Request, failed: Request) -> bool:
    """True when `request` asks at least what `failed` asked (same labels or more)."""
    return (
        request.cpus >= failed.cpus
        and request.mem_bytes >= failed.mem_bytes
        and request.gpus >= failed.gpus
        and failed.labels.items() <= request.labels.items()
    )
