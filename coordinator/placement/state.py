"""The cluster as placement sees it, kept across passes and updated by events, pure.

A `ClusterSnapshot` rebuilt every pass costs the whole fleet (the free map, then the score
index over every node). `ClusterState` is the same information kept alive: a node that
changed (`put_node`, `drop_node`) and a job placed or ended (`allocate`, `release`) move
only that node in the score order (O(log n)); a pass (`scheduler.schedule`) touches only the
jobs it places and the nodes they land on, and gives back what it held (`trial`). The
daemon and the simulator feed it the same events; `snapshot()` is the frozen view, equal
to what a rebuild from scratch would give (a property test checks it after every event).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from coordinator.placement.filters import whole
from coordinator.placement.model import (
    Allocation,
    ClusterSnapshot,
    Free,
    NodeSnapshot,
    Power,
    Request,
)
from coordinator.placement.select import NodeIndex

PLACEABLE = (Power.AWAKE, Power.WAKING, Power.ASLEEP)


class ClusterState:
    """Nodes, their free capacity and score order per power state, and the allocations.

    An index per power state is built the first time a pass needs it (most passes place
    everything on awake nodes) and kept up to date from then on."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeSnapshot] = {}
        self.free: dict[str, Free] = {}
        self.allocations: dict[str, Allocation] = {}
        self._on_node: dict[str, dict[str, Allocation]] = defaultdict(dict)
        self._indexes: dict[Power, NodeIndex] = {}
        self._in_pass = False
        self._changes = 0  # counts changes: refusals remembered between passes hold until one
        self._remembered_at = 0

    @classmethod
    def of(cls, cluster: ClusterSnapshot) -> ClusterState:
        state = cls()
        for alloc in cluster.allocations:
            state.allocate(alloc)
        for node in cluster.nodes:
            state.put_node(node)
        return state

    def snapshot(self) -> ClusterSnapshot:
        return ClusterSnapshot(tuple(self.nodes.values()), tuple(self.allocations.values()))

    def index(self, power: Power) -> NodeIndex:
        """The score-ordered index of the nodes in one placeable power state."""
        index = self._indexes.get(power)
        if index is None:
            nodes = (n for n in self.nodes.values() if n.power is power)
            index = self._indexes[power] = NodeIndex(nodes, self.free)
        return index

    def put_node(self, node: NodeSnapshot) -> None:
        """A node joined or changed (power, capacity, load, labels, resume latency)."""
        old = self.nodes.get(node.name)
        if old == node:
            return
        self._changes += 1
        if old is not None:
            self._unindex(old)
        self.nodes[node.name] = node
        if old is None or whole(old) != whole(node):
            self.free[node.name] = self._free_of(node)
        index = self._indexes.get(node.power)
        if index is not None:
            index.put(node)

    def drop_node(self, name: str) -> None:
        """A node left the fleet; jobs allocated on it stay until released."""
        node = self.nodes.pop(name, None)
        if node is not None:
            self._changes += 1
            self._unindex(node)
            del self.free[name]

    def allocate(self, alloc: Allocation) -> None:
        """A job was placed on a node (its resources are taken until `release`)."""
        if alloc.job_id in self.allocations:
            self.release(alloc.job_id)
        self._changes += 1
        self.allocations[alloc.job_id] = alloc
        self._on_node[alloc.node][alloc.job_id] = alloc
        self._refresh(alloc.node)

    def release(self, job_id: str) -> None:
        """A job ended or left its node."""
        alloc = self.allocations.pop(job_id, None)
        if alloc is None:
            return
        self._changes += 1
        on_node = self._on_node[alloc.node]
        del on_node[job_id]
        if not on_node:
            del self._on_node[alloc.node]
        self._refresh(alloc.node)

    def hold(self, power: Power, node: NodeSnapshot, request: Request) -> tuple[int, ...]:
        """Take `request` on `node` for this pass only (inside `trial`): given back after."""
        if not self._in_pass:
            raise RuntimeError("hold() outside trial()")
        return self.index(power).hold(node, request)

    def read_index(self, power: Power) -> NodeIndex:
        """An index for reads between passes (`pick`): the refusals it remembers hold while
        nothing changed, and are forgotten at the first change (capacity may have freed)."""
        if self._in_pass:
            raise RuntimeError("read_index() inside a pass")
        self._forget_stale_refusals()
        return self.index(power)

    @contextmanager
    def trial(self) -> Iterator[ClusterState]:
        """A pass: what it holds lives in the indexes' pass overlay (a held node leaves its
        kept order for the pass), all given back when it ends; the free map is untouched."""
        if self._in_pass:
            raise RuntimeError("a trial is already open")
        self._in_pass = True
        self._forget_stale_refusals()
        try:
            yield self
        finally:
            self._in_pass = False
            for index in self._indexes.values():
                index.new_pass()
            self._remembered_at = self._changes

    def _forget_stale_refusals(self) -> None:
        """Refusals remembered by reads hold until the state changes (capacity may free)."""
        if self._changes != self._remembered_at:
            for index in self._indexes.values():
                index.new_pass()
            self._remembered_at = self._changes

    def _free_of(self, node: NodeSnapshot) -> Free:
        """Capacity minus the node's allocations: what a rebuild would compute."""
        free = whole(node)
        for alloc in self._on_node.get(node.name, {}).values():
            free = free.minus(alloc.cpus, alloc.mem_bytes, alloc.gpus)
        return free

    def _refresh(self, name: str) -> None:
        node = self.nodes.get(name)
        if node is None:
            return
        free = self._free_of(node)
        index = self._indexes.get(node.power)
        if index is not None and name in index:
            index.rekey(name, free)
        else:
            self.free[name] = free

    def _unindex(self, node: NodeSnapshot) -> None:
        index = self._indexes.get(node.power)
        if index is not None and node.name in index:
            index.remove(node.name)
