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


class _Bucket:
    """Nodes of one shape (label set, GPU count) in score order."""

    def __init__(self, labels: dict[str, str], gpus: int) -> None:
        self.labels, self.gpus = labels, gpus
        self.most_cpus = self.most_mem_bytes = 0  # the biggest node's whole capacity
        self.order: list[tuple[Any, ...]] = []
        self.failed: list[Request] = []  # free only shrinks in a pass: no bigger ask can fit

    def could_hold(self, request: Request) -> bool:
        if request.gpus > self.gpus:
            return False
        return not request.labels or all(self.labels.get(k) == v for k, v in request.labels.items())

    def first(
        self,
        request: Request,
        accept: Callable[[NodeSnapshot], bool] | None,
        nodes: dict[str, NodeSnapshot],
        free: dict[str, Free],
    ) -> tuple[Any, ...] | None:
        if accept is None and any(_covers(request, failed) for failed in self.failed):
            return None
        for key in self.order:
            node = nodes[key[-1]]
            if rejection(request, node, free[node.name]) is None and (
                accept is None or accept(node)
            ):
                return key
        if accept is None:
            self.failed.append(request)
        return None


class NodeIndex:
    """Nodes in score order over a `free` map that this index alone updates during a pass.

    Nodes are bucketed by shape (labels, GPU count), each bucket sorted by score; a request
    looks only at buckets that could hold it and takes the best first fit among them. A
    request with neither labels nor GPUs walks one order of every node instead (usually
    stopping at its first node). That is `select`'s answer (a property test checks it),
    without filtering every node.
    """

    def __init__(self, nodes: Iterable[NodeSnapshot], free: dict[str, Free]) -> None:
        self._nodes = {n.name: n for n in nodes}
        self.free = free
        self._buckets: dict[tuple[Any, ...], _Bucket] = {}
        self._bucket_of: dict[str, _Bucket] = {}
        for node in self._nodes.values():
            shape = (tuple(sorted(node.labels.items())), len(node.gpus))
            bucket = self._buckets.get(shape)
            if bucket is None:
                bucket = self._buckets[shape] = _Bucket(node.labels, len(node.gpus))
            bucket.order.append(self._key(node))
            bucket.most_cpus = max(bucket.most_cpus, node.cpus)
            bucket.most_mem_bytes = max(bucket.most_mem_bytes, node.mem_bytes)
            self._bucket_of[node.name] = bucket
        self._all = _Bucket({}, 0)
        self._all.order = sorted(k for b in self._buckets.values() for k in b.order)
        for bucket in self._buckets.values():
            bucket.order.sort()

    def __len__(self) -> int:
        return len(self._nodes)

    def _key(self, node: NodeSnapshot) -> tuple[Any, ...]:
        return (*score(node, self.free[node.name]), node.name)

    def first(
        self, request: Request, accept: Callable[[NodeSnapshot], bool] | None = None
    ) -> NodeSnapshot | None:
        """What `select` would answer (restricted to nodes `accept` allows)."""
        if not request.labels and not request.gpus:
            key = self._all.first(request, accept, self._nodes, self.free)
            return None if key is None else self._nodes[key[-1]]
        best: tuple[Any, ...] | None = None
        for bucket in self._buckets.values():
            if bucket.could_hold(request):
                key = bucket.first(request, accept, self._nodes, self.free)
                if key is not None and (best is None or key < best):
                    best = key
        return None if best is None else self._nodes[best[-1]]

    def could_ever_take(self, request: Request) -> int:
        """How many nodes here could take the request if they were empty."""
        return sum(
            len(b.order)
            for b in self._buckets.values()
            if b.could_hold(request)
            and b.most_cpus >= request.cpus
            and b.most_mem_bytes >= request.mem_bytes
        )

    def take(self, node: NodeSnapshot, request: Request) -> tuple[int, ...]:
        """Allocate `request` on `node`; returns the GPU indices it gets."""
        orders = (self._bucket_of[node.name].order, self._all.order)
        old = self._key(node)
        for order in orders:
            del order[bisect.bisect_left(order, old)]
        gpus = assign_gpus(self.free[node.name], request.gpus)
        self.free[node.name] = self.free[node.name].minus(request.cpus, request.mem_bytes, gpus)
        new = self._key(node)
        for order in orders:
            bisect.insort(order, new)
        return gpus

    def adjust(self, name: str, delta: int) -> None:
        """A call started (+1) or ended (-1) on the node: its load moves, its capacity does not."""
        node = self._nodes[name]
        orders = (self._bucket_of[name].order, self._all.order)
        old = self._key(node)
        for order in orders:
            del order[bisect.bisect_left(order, old)]
        free = self.free[name]
        self.free[name] = free._replace(jobs=free.jobs + delta)
        new = self._key(node)
        for order in orders:
            bisect.insort(order, new)


def _covers(request: Request, failed: Request) -> bool:
    """True when `request` asks at least what `failed` asked (same labels or more)."""
    return (
        request.cpus >= failed.cpus
        and request.mem_bytes >= failed.mem_bytes
        and request.gpus >= failed.gpus
        and failed.labels.items() <= request.labels.items()
    )
