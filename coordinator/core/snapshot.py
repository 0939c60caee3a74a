"""From live state to the frozen snapshot placement reads, pure.

Used by the daemon (registry views, kept across passes in `KeptCluster`) and by the CLI (the
same views, loaded from the store), so `dormouse submit` and `dormouse pick` answer from what
the coordinator last saw.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from coordinator.core import tick
from coordinator.core.jobstate import ON_NODE, JobRecord
from coordinator.core.registry import NodeView, Registry, gpu_health
from coordinator.core.tick import Shape
from coordinator.placement.model import ClusterSnapshot, NodeSnapshot
from coordinator.placement.state import ClusterState
from shared.gpuhealth import Health
from shared.messages import Hello


def shape_of(hello: Hello) -> Shape:
    return Shape(
        cpus=hello.cpus,
        mem_bytes=hello.mem_total_bytes,
        gpus=tuple(g.index for g in hello.gpus),
        labels=hello.labels,
    )


KEY_OK, NO_KEY, OTHER_KEY = "ok", "no key", "other key"
REFUSING = frozenset({NO_KEY, OTHER_KEY})  # its agent refuses every command: place nothing


def key_state(agent_key: str | None, own_key: str | None) -> str:
    """How a node's agent stands with the coordinator's commands, from the key id in its
    hello and the coordinator's (`own_key`, None where this process cannot read the key):
    "ok", "no key", "other key", "unknown" (an agent too old to say, or no hello yet) or
    "unchecked" (the agent has a key; which, this process cannot tell)."""
    if agent_key is None:
        return "unknown"
    if not agent_key:
        return NO_KEY
    if own_key is None:
        return "unchecked"
    return KEY_OK if agent_key == own_key else OTHER_KEY


def node_snapshot(
    view: NodeView, resume_latency_s: float = 0.0, own_key: str | None = None
) -> NodeSnapshot | None:
    """None for a node that has not said hello yet: its capacity is unknown."""
    if view.hello is None:
        return None
    node = tick.node_snapshot(
        view.name,
        view.state,
        shape_of(view.hello),
        connections=int(view.latest.get("connections") or 0),
        util_pct=float(view.latest.get("cpu_util_pct") or 0.0),
        resume_latency_s=resume_latency_s,
    )
    commands = key_state(view.hello.command_key, own_key)
    if commands in REFUSING:
        node = replace(node, commands_refused=commands)
    if not view.drains and not view.latest.get("gpu_health"):
        return node
    unwell = gpu_health(view)
    drained = {i for i in view.drains if i >= 0}
    failed = {i for i, (health, _) in unwell.items() if health == Health.FAILED}
    degraded = {i for i, (health, _) in unwell.items() if health == Health.DEGRADED}
    return replace(
        node,
        drained=-1 in view.drains,
        unusable_gpus=frozenset(failed | drained),
        degraded_gpus=frozenset(degraded - drained),
    )


def cluster_snapshot(
    views: Iterable[NodeView],
    jobs: Iterable[JobRecord],
    resume_latency: Callable[[str], float] = lambda _: 0.0,
    own_key: str | None = None,
) -> ClusterSnapshot:
    """`resume_latency` gives each node's expected resume time (learned from its wakes);
    `own_key` the id of the coordinator's command key, where known."""
    snapshots = (node_snapshot(v, resume_latency(v.name), own_key) for v in views)
    nodes = tuple(n for n in snapshots if n is not None)
    allocations = tuple(j.allocation() for j in jobs if j.state in ON_NODE and j.node)
    return ClusterSnapshot(nodes, allocations)


class KeptCluster:
    """The daemon's `ClusterState`, brought up to date each pass from what changed: nodes
    the registry saw change (its `watch` set), every node when a learned wake time moved
    (rare: a resume), and the allocations of the active jobs (added, moved, ended)."""

    def __init__(
        self,
        registry: Registry,
        resume_latency: Callable[[str], float],
        own_key: str | None = None,
    ) -> None:
        self.state = ClusterState()
        self._registry, self._resume_latency, self._own_key = registry, resume_latency, own_key
        self._changed = registry.watch()
        self._changed.update(registry.nodes)  # the nodes it knew before
        self._latency_version = -1
        self.synced = False  # not before the first pass: until then the store knows more
        self.refusing: dict[str, str] = {}  # node -> why its agent cannot verify commands

    def sync(self, jobs: Iterable[JobRecord], latency_version: int) -> ClusterState:
        if latency_version != self._latency_version:
            self._latency_version = latency_version
            self._changed.update(self._registry.nodes)
        for name in self._changed:
            view = self._registry.nodes.get(name)
            node = (
                None
                if view is None
                else node_snapshot(view, self._resume_latency(name), self._own_key)
            )
            if node is None:
                self.state.drop_node(name)
            else:
                self.state.put_node(node)
            if node is not None and node.commands_refused:
                self.refusing[name] = node.commands_refused
            else:
                self.refusing.pop(name, None)
        self._changed.clear()
        allocations = {j.id: j.allocation() for j in jobs if j.state in ON_NODE and j.node}
        for gone in self.state.allocations.keys() - allocations.keys():
            self.state.release(gone)
        for job_id, alloc in allocations.items():
            if self.state.allocations.get(job_id) != alloc:
                self.state.allocate(alloc)
        self.synced = True
        return self.state

    def ready(self) -> ClusterState | None:
        """The state once a pass has brought it up to date, for readers (the API's pick)."""
        return self.state if self.synced else None
