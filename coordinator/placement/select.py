"""Stage 5, select: the best-scoring feasible node, and the GPU indices it hands out.

`select` is the definition (filter, then the lowest score); `NodeIndex` is the same choice
kept fast for many requests and across passes: nodes stay sorted by score, a placement or a
changed node re-sorts only that node, and the first feasible node in order is the answer.
"""

from __future__ import annotations

import bisect
import heapq
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from sortedcontainers import SortedList

from coordinator.placement.filters import rejection
from coordinator.placement.model import Free, NodeSnapshot, Request
from coordinator.placement.score import SCORERS, score


def select(
    request: Request, nodes: Iterable[NodeSnapshot], free: dict[str, Free]
) -> NodeSnapshot | None:
    feasible = [n for n in nodes if rejection(request, n, free[n.name]) is None]
    return min(feasible, key=lambda n: score(n, free[n.name]), default=None)


def assign_gpus(node: NodeSnapshot, free: Free, count: int) -> tuple[int, ...]:
    """Healthy before degraded, then the lowest index: deterministic, never one already
    handed out, failed or drained."""
    usable = free.gpus - node.unusable_gpus if node.unusable_gpus else free.gpus
    if count > len(usable):
        raise ValueError(f"{count} GPUs asked, {len(usable)} free and usable")
    degraded = node.degraded_gpus
    return tuple(sorted(usable, key=lambda i: (i in degraded, i))[:count])


SMALL = 1024  # an order this long or shorter is a plain list: C bisect beats SortedList's


class _Order:
    """Keys in sorted order: a plain list while small (most buckets, and the waking and
    asleep indexes), a `SortedList` (O(log n) inserts) once past `SMALL`."""

    __slots__ = ("_keys",)

    def __init__(self) -> None:
        self._keys: list[tuple[Any, ...]] | SortedList[tuple[Any, ...]] = []

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: tuple[Any, ...]) -> None:
        keys = self._keys
        if isinstance(keys, SortedList):
            keys.add(key)
        else:
            bisect.insort(keys, key)
            if len(keys) > SMALL:
                self._keys = SortedList(keys)

    def remove(self, key: tuple[Any, ...]) -> None:
        keys = self._keys
        if isinstance(keys, SortedList):
            keys.remove(key)
            return
        at = bisect.bisect_left(keys, key)
        if at == len(keys) or keys[at] != key:
            raise ValueError(f"{key!r} not in the order")
        del keys[at]

    def update(self, keys: Iterable[tuple[Any, ...]]) -> None:
        merged = sorted([*self._keys, *keys])
        self._keys = merged if len(merged) <= SMALL else SortedList(merged)


class _Bucket:
    """Nodes of one shape (label set, GPU count) in score order, kept across passes."""

    def __init__(self, labels: dict[str, str], gpus: int) -> None:
        self.labels, self.gpus = labels, gpus
        self.order = _Order()
        self.cpus: Counter[int] = Counter()  # whole capacities, for `could_ever_take`
        self.mem_bytes: Counter[int] = Counter()
        self.failed: list[Request] = []  # free only shrinks in a pass: no bigger ask can fit
        self.moved: list[tuple[Any, ...]] = []  # keys of nodes held in this pass, sorted

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
        held: dict[str, Free],
    ) -> tuple[Any, ...] | None:
        """The first node in score order that takes the request. Nodes held in this pass
        left the kept order and are met at their new keys (`moved`)."""
        if accept is None and self.failed and any(covers(request, f) for f in self.failed):
            return None

        cpus, mem_bytes, gpus = request.cpus, request.mem_bytes, request.gpus
        keys = heapq.merge(self.order, self.moved) if self.moved else self.order
        for key in keys:
            room = held.get(key[-1]) or free[key[-1]]
            if room.cpus < cpus or room.mem_bytes < mem_bytes or len(room.gpus) < gpus:
                continue  # the common refusals, before the full filter chain
            node = nodes[key[-1]]
            if rejection(request, node, room) is None and (accept is None or accept(node)):
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
        self._all: _Bucket | None = None  # every node in one order: made when first asked
        self._held: dict[str, Free] = {}  # this pass's holds: node -> what is left
        keys: dict[int, list[tuple[Any, ...]]] = defaultdict(list)  # bucket id -> keys
        for node in nodes:  # sorted once per bucket, not node by node
            bucket = self._register(node)
            keys[id(bucket)].append(self._key(node))
        for bucket in self._buckets.values():
            bucket.order.update(keys[id(bucket)])

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, name: object) -> bool:
        return name in self._nodes

    def _key(self, node: NodeSnapshot) -> tuple[Any, ...]:
        free = self.free[node.name]
        return (*[scorer(node, free) for scorer in SCORERS], node.name)

    def new_pass(self) -> None:
        """Forget the last pass: its refusals and what it held (held nodes go back to their
        kept keys, which never changed: `free` is not touched by a pass)."""
        for name in self._held:
            key = self._key(self._nodes[name])
            self._bucket_of[name].order.add(key)
            if self._all is not None:
                self._all.order.add(key)
        self._held.clear()
        for bucket in self._all_buckets():
            bucket.failed.clear()
            bucket.moved.clear()

    def _all_buckets(self) -> list[_Bucket]:
        every = [] if self._all is None else [self._all]
        return [*self._buckets.values(), *every]

    def hold(self, node: NodeSnapshot, request: Request) -> tuple[int, ...]:
        """Take `request` on `node` for this pass only: `free` stays as it is; the node
        leaves the kept orders (once a pass) for its new key in its buckets' `moved` lists,
        and `new_pass` puts it back. Returns the GPU indices it gets."""
        name = node.name
        buckets = [self._bucket_of[name], *([] if self._all is None else [self._all])]
        before = self._held.get(name)
        for bucket in buckets:
            if before is None:
                bucket.order.remove(self._key(node))
            else:
                bucket.moved.remove((*score(node, before), name))
        room = before or self.free[name]
        gpus = assign_gpus(node, room, request.gpus)
        self._held[name] = after = room.minus(request.cpus, request.mem_bytes, gpus)
        for bucket in buckets:
            bisect.insort(bucket.moved, (*score(node, after), name))
        return gpus

    def put(self, node: NodeSnapshot) -> None:
        """Add the node, or replace what the index knew of it (its `free` entry must be set)."""
        if node.name in self._nodes:
            self.remove(node.name)
        bucket = self._register(node)
        key = self._key(node)
        bucket.order.add(key)
        if self._all is not None:
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
        if self._all is not None:
            self._all.order.remove(key)
        bucket.count(node, -1)
        if not bucket.order:
            del self._buckets[_shape(node)]

    def rekey(self, name: str, free: Free) -> None:
        """The node's free capacity (or job count) changed: move it in the score order."""
        node = self._nodes[name]
        order = self._bucket_of[name].order
        old = self._key(node)
        order.remove(old)
        self.free[name] = free
        new = self._key(node)
        order.add(new)
        if self._all is not None:
            self._all.order.remove(old)
            self._all.order.add(new)

    def first(
        self, request: Request, accept: Callable[[NodeSnapshot], bool] | None = None
    ) -> NodeSnapshot | None:
        """What `select` would answer (restricted to nodes `accept` allows)."""
        if not request.labels and not request.gpus:
            every = self._every_node()
            key = every.first(request, accept, self._nodes, self.free, self._held)
            return None if key is None else self._nodes[key[-1]]
        best: tuple[Any, ...] | None = None
        for bucket in self._buckets.values():
            if bucket.could_hold(request):
                key = bucket.first(request, accept, self._nodes, self.free, self._held)
                if key is not None and (best is None or key < best):
                    best = key
        return None if best is None else self._nodes[best[-1]]

    def _every_node(self) -> _Bucket:
        """One order of every node, for requests any shape could hold; kept from then on
        (a GPU-only workload never pays for it)."""
        if self._all is None:
            self._all = _Bucket({}, 0)
            self._all.order.update(k for b in self._buckets.values() for k in b.order)
            self._all.moved = sorted(k for b in self._buckets.values() for k in b.moved)
        return self._all

    def takes(self, name: str, request: Request) -> bool:
        """Whether the node, less what this pass has held on it, takes the request."""
        room = self._held.get(name) or self.free[name]
        return rejection(request, self._nodes[name], room) is None

    def could_ever_take(self, request: Request) -> int:
        """How many nodes here could take the request if they were empty."""
        return sum(len(b.order) for b in self._buckets.values() if b.could_ever_hold(request))

    def adjust(self, name: str, delta: int) -> None:
        """A call started (+1) or ended (-1) on the node: its load moves, its capacity does not."""
        free = self.free[name]
        self.rekey(name, free._replace(jobs=free.jobs + delta))


def could_ever_take_any(indexes: Iterable[NodeIndex], request: Request) -> bool:
    """Whether some node of these indexes could take the request if empty, judged per shape
    over all of them as `NodeIndex.could_ever_take` judges one (the shape's most CPUs and
    most memory): the fleet-wide refusal of a kept state, from its buckets, not its nodes."""
    most_cpus: dict[tuple[Any, ...], int] = defaultdict(int)
    most_mem_bytes: dict[tuple[Any, ...], int] = defaultdict(int)
    for index in indexes:
        for shape, bucket in index._buckets.items():
            if bucket.could_hold(request):  # labels and GPUs first: most shapes stop here
                most_cpus[shape] = max(most_cpus[shape], max(bucket.cpus, default=0))
                most_mem_bytes[shape] = max(most_mem_bytes[shape], max(bucket.mem_bytes, default=0))
    return any(
        most_cpus[shape] >= request.cpus and most_mem_bytes[shape] >= request.mem_bytes
        for shape in most_cpus
    )


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
