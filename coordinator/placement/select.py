"""Stage 5, select: the best-scoring feasible node, and the GPU indices it hands out.

`select` is the definition (filter, then the lowest score); `NodeIndex` is the same choice
kept fast for many requests and across passes: nodes stay sorted by score, a placement or a
changed node re-sorts only that node, and the first feasible node in order is the answer.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from sortedcontainers import SortedList

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
    """Nodes of one shape (label set, GPU count) in score order, kept across passes."""

    def __init__(self, labels: dict[str, str], gpus: int) -> None:
        self.labels, self.gpus = labels, gpus
        self.order: SortedList[tuple[Any, ...]] = SortedList()
        self.cpus: Counter[int] = Counter()  # whole capacities, for `could_ever_take`
        self.mem_bytes: Counter[int] = Counter()
        self.failed: list[Request] = []  # free only shrinks in a pass: no bigger ask can fit

    def could_hold(self, request: Request) -> bool:
        if request.gpus > self.gpus:
            return False
        return not request.labels or all(self.labels.get(k) == v for k, v in request.labels.items())

    def could_ever_hold(self, request: Request) -> bool:
        return (
            self.could_hold(request)
            and max(self.cpus, default=0) >= request.cpus
            and max(self.mem_bytes, default=0) >= request.mem_bytes
        )

    def count(self, node: NodeSnapshot, delta: int) -> None:
        for counter, value in ((self.cpus, node.cpus), (self.mem_bytes, node.mem_bytes)):
            counter[value] += delta
            if not counter[value]:
                del counter[value]

    def first(
        self,
        request: Request,
        accept: Callable[[NodeSnapshot], bool] | None,
        nodes: dict[str, NodeSnapshot],
        free: dict[str, Free],
    ) -> tuple[Any, ...] | None:
        if accept is None and any(covers(request, failed) for failed in self.failed):
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
    """Nodes in score order over a `free` map, kept across passes and updated per change.

    Nodes are bucketed by shape (labels, GPU count), each bucket a sorted list by score; a
    request looks only at buckets that could hold it and takes the best first fit among them.
    A request with neither labels nor GPUs walks one order of every node instead (usually
    stopping at its first node). That is `select`'s answer (a property test checks it),
    without filtering every node. A node that changes (`put`, `remove`, `rekey`) moves in
    O(log n); nothing else is touched. `new_pass` forgets the refusals remembered within a
    pass (they hold only while free capacity only shrinks).
    """

    def __init__(self, nodes: Iterable[NodeSnapshot], free: dict[str, Free]) -> None:
        self._nodes: dict[str, NodeSnapshot] = {}
        self.free = free
        self._buckets: dict[tuple[Any, ...], _Bucket] = {}
        self._bucket_of: dict[str, _Bucket] = {}
        self._all = _Bucket({}, 0)
        keys: dict[int, list[tuple[Any, ...]]] = defaultdict(list)  # bucket id -> keys
        for node in nodes:  # sorted once per bucket, not node by node
            bucket = self._register(node)
            keys[id(bucket)].append(self._key(node))
        for bucket in self._buckets.values():
            bucket.order.update(keys[id(bucket)])
        self._all.order.update(k for ks in keys.values() for k in ks)

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, name: object) -> bool:
        return name in self._nodes

    def _key(self, node: NodeSnapshot) -> tuple[Any, ...]:
        return (*score(node, self.free[node.name]), node.name)

    def new_pass(self) -> None:
        self._all.failed.clear()
        for bucket in self._buckets.values():
            bucket.failed.clear()

    def put(self, node: NodeSnapshot) -> None:
        """Add the node, or replace what the index knew of it (its `free` entry must be set)."""
        if node.name in self._nodes:
            self.remove(node.name)
        bucket = self._register(node)
        key = self._key(node)
        bucket.order.add(key)
        self._all.order.add(key)

    def _register(self, node: NodeSnapshot) -> _Bucket:
        """Note the node and its shape's bucket (the caller adds its key to the orders)."""
        bucket = self._buckets.get(_shape(node))
        if bucket is None:
            bucket = self._buckets[_shape(node)] = _Bucket(node.labels, len(node.gpus))
        self._nodes[node.name] = node
        self._bucket_of[node.name] = bucket
        bucket.count(node, +1)
        return bucket

    def remove(self, name: str) -> None:
        node = self._nodes.pop(name)
        bucket = self._bucket_of.pop(name)
        key = self._key(node)
        bucket.order.remove(key)
        self._all.order.remove(key)
        bucket.count(node, -1)
        if not bucket.order:
            del self._buckets[_shape(node)]

    def rekey(self, name: str, free: Free) -> None:
        """The node's free capacity (or job count) changed: move it in the score order."""
        node = self._nodes[name]
        orders = (self._bucket_of[name].order, self._all.order)
        old = self._key(node)
        for order in orders:
            order.remove(old)
        self.free[name] = free
        new = self._key(node)
        for order in orders:
            order.add(new)

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
        return sum(len(b.order) for b in self._buckets.values() if b.could_ever_hold(request))

    def take(self, node: NodeSnapshot, request: Request) -> tuple[int, ...]:
        """Allocate `request` on `node`; returns the GPU indices it gets."""
        free = self.free[node.name]
        gpus = assign_gpus(free, request.gpus)
        self.rekey(node.name, free.minus(request.cpus, request.mem_bytes, gpus))
        return gpus

    def adjust(self, name: str, delta: int) -> None:
        """A call started (+1) or ended (-1) on the node: its load moves, its capacity does not."""
        free = self.free[name]
        self.rekey(name, free._replace(jobs=free.jobs + delta))


def _shape(node: NodeSnapshot) -> tuple[Any, ...]:
    return (tuple(sorted(node.labels.items())), len(node.gpus))


def covers(request: Request, failed: Request) -> bool:
    """True when `request` asks at least what `failed` asked (same labels or more)."""
    return (
        request.cpus >= failed.cpus
        and request.mem_bytes >= failed.mem_bytes
        and request.gpus >= failed.gpus
        and failed.labels.items() <= request.labels.items()
    )
