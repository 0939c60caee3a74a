"""Live node state, pure: hello, status, telemetry and power decisions in, node views out.

What each state means is `core.nodestate`; this module only decides the transitions that
agents' messages and silence cause.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from coordinator.core.nodestate import MEANING, NodeState
from shared.gpuhealth import Health
from shared.messages import Hello, Status, TelemetryBatch


@dataclass
class NodeView:
    name: str
    state: NodeState
    state_since: float
    last_seen: float | None = None
    hello: Hello | None = None
    latest: dict[str, Any] = field(default_factory=dict)
    drains: dict[int, str] = field(default_factory=dict)  # GPU index (-1: node) -> reason


HEALTHY = (Health.OK.value, "")  # (health, reason) of a GPU not listed as unwell
MAX_HEALTH_CHANGES = 10_000  # waiting to be stored; the node's state is never lost, only log


@dataclass(frozen=True, slots=True)
class GpuHealthChange:
    """A GPU's health as the agent judged it changed (kind: ok, degraded or failed)."""

    ts: float
    node: str
    gpu_index: int
    kind: str
    reason: str


def gpu_health(view: NodeView) -> dict[int, tuple[str, str]]:
    """GPU index -> (health, reason) of the node's GPUs that are not ok, newest sample."""
    unwell = view.latest.get("gpu_health") or {}
    return {int(index): (health, reason) for index, (health, reason) in unwell.items()}


def _after_status(state: NodeState, said: str) -> NodeState:
    """The agent's status, read against what the coordinator knows. A sleeping node that
    drops off (Last Will or its own `offline`) is asleep, not offline; a failed node stays
    failed until an operator clears it."""
    if state is NodeState.FAILED:
        return state
    if said == NodeState.OFFLINE and state in {
        NodeState.SLEEPING,
        NodeState.ASLEEP,
        NodeState.WAKING,
    }:
        return NodeState.ASLEEP if state is NodeState.SLEEPING else state
    return NodeState(said)


def summarise(batch: TelemetryBatch) -> dict[str, Any]:
    """What `dormouse nodes` shows, from the newest sample of a batch."""
    sample = batch.samples[-1]
    gpu_utils = [g.metrics.get("gpu_util_pct") for g in sample.gpus]
    unwell = {str(g.index): [g.health, g.reason] for g in sample.gpus if g.health != Health.OK}
    known = [u for u in gpu_utils if u is not None]
    metrics = sample.metrics
    return {
        "ts": sample.ts,
        "seq": batch.seq_last,
        "cpu_util_pct": metrics.get("cpu_util_pct"),
        "mem_used_bytes": metrics.get("mem_used_bytes"),
        "mem_total_bytes": metrics.get("mem_total_bytes"),
        "gpus": len(sample.gpus),
        "gpu_util_pct": sum(known) / len(known) if known else None,
        # each GPU's, for the waste watch (JSON keys are strings)
        "gpu_utils": {
            str(g.index): u for g, u in zip(sample.gpus, gpu_utils, strict=True) if u is not None
        },
        "power_w": metrics.get("power_w"),
        "jobs": metrics.get("jobs_running"),
        "connections": metrics.get("connections"),
        "spool_memory_samples": metrics.get("spool_memory_samples"),
        "gpu_health": unwell,  # only GPUs that are not ok: JSON keys are strings
    }


class Registry:
    def __init__(self, offline_after_s: float, nodes: list[NodeView] | None = None) -> None:
        self._offline_after_s = offline_after_s
        self.nodes: dict[str, NodeView] = {n.name: n for n in nodes or []}
        self.changed: set[str] = set()
        self._watchers: list[set[str]] = [self.changed]
        self.health_changes: list[GpuHealthChange] = []  # taken and stored by the daemon
        self.health_counts: Counter[str] = Counter()  # changes seen, by new health

    def watch(self) -> set[str]:
        """A set that gathers the name of every node that changes from now on (its reader
        empties it): how the kept placement and power states learn what to update."""
        names: set[str] = set()
        self._watchers.append(names)
        return names

    def forget(self, name: str, asked_at: float) -> bool:
        """`dormouse nodes forget`: the node leaves memory (and counts no more towards
        `max_nodes`), unless it was heard from after `asked_at`: a live node stays. The kept
        placement and power states drop it at their next pass."""
        node = self.nodes.get(name)
        if node is None or (node.last_seen or 0.0) > asked_at:
            return False
        del self.nodes[name]
        self.changed.discard(name)  # nothing of it to save
        for names in self._watchers[1:]:
            names.add(name)
        return True

    def _touch(self, name: str) -> None:
        for names in self._watchers:
            names.add(name)

    def _node(self, name: str, now: float) -> NodeView:
        if name not in self.nodes:
            self.nodes[name] = NodeView(name=name, state=NodeState.OFFLINE, state_since=now)
        self._touch(name)
        return self.nodes[name]

    def _set_state(self, node: NodeView, state: NodeState, now: float) -> None:
        if node.state != state:
            node.state, node.state_since = state, now

    def on_hello(self, hello: Hello, now: float) -> None:
        self._node(hello.node, now).hello = hello

    def on_status(self, status: Status, now: float) -> None:
        node = self._node(status.node, now)
        self._set_state(node, _after_status(node.state, status.state), now)

    def on_telemetry(self, batch: TelemetryBatch, now: float) -> None:
        node = self._node(batch.node, now)
        node.last_seen = now
        if node.latest.get("seq", -1) < batch.seq_last:  # a resent old batch is not "latest"
            self._newest(node, summarise(batch))
        self._sampling(node, batch.samples[-1].ts, now)

    def on_live(self, name: str, seen_at: float, latest: dict[str, Any], now: float) -> None:
        """A node's newest batch as an ingest worker stored it (the leader role reads no
        telemetry): the same facts as `on_telemetry`, seen at the worker's `seen_at`."""
        known = self.nodes.get(name)
        if known is None:
            return  # no hello heard yet: the leader takes nodes only from hellos and the store
        if known.latest.get("seq") == latest["seq"] and (known.last_seen or 0) >= seen_at:
            return  # a row read again (the feed looks back a little)
        node = self._node(name, now)
        node.last_seen = max(node.last_seen or seen_at, seen_at)
        if node.latest.get("seq", -1) < latest["seq"]:
            self._newest(node, latest)
        self._sampling(node, latest["ts"], now)

    def _newest(self, node: NodeView, latest: dict[str, Any]) -> None:
        before = gpu_health(node)
        node.latest = latest
        self._note_health(node, before, latest["ts"])

    def _sampling(self, node: NodeView, newest: float, now: float) -> None:
        """A sample stamped `newest` arrived: a waking node is up, a sleeping one never slept."""
        if MEANING[node.state].resuming and newest > node.state_since:
            self._set_state(node, NodeState.ONLINE, now)  # samples from before it slept: no
        elif node.state is NodeState.SLEEPING and newest > node.state_since + self._offline_after_s:
            self._set_state(node, NodeState.ONLINE, now)  # still sampling: it never slept

    def _note_health(self, node: NodeView, before: dict[int, tuple[str, str]], ts: float) -> None:
        after = gpu_health(node)
        for index in sorted(before.keys() | after.keys()):
            health, reason = after.get(index, HEALTHY)
            if before.get(index, HEALTHY) != (health, reason):
                self.health_changes.append(GpuHealthChange(ts, node.name, index, health, reason))
                self.health_counts[health] += 1
        del self.health_changes[:-MAX_HEALTH_CHANGES]  # a long store outage: keep the newest

    def adopt(self, stored: list[NodeView]) -> None:
        """At a takeover: the power states the last leader stored (this process only
        ingested meanwhile, so it knows samples but not sleeps and wakes); every node counts
        as changed, so the kept placement and power states are rebuilt. The health changes
        noted meanwhile are dropped: the last leader stored them."""
        self.health_changes.clear()
        for view in stored:
            node = self.nodes.get(view.name)
            if node is None:
                self.nodes[view.name] = dataclasses.replace(view)
            else:
                node.state, node.state_since = view.state, view.state_since
                node.hello = node.hello or view.hello
                node.drains = dict(view.drains)
        for name in self.nodes:
            self._touch(name)

    def set_drains(self, drains: dict[str, dict[int, str]]) -> None:
        """The operators' drains as the store holds them; nodes whose drains moved change."""
        for name, view in self.nodes.items():
            wanted = drains.get(name, {})
            if view.drains != wanted:
                view.drains = dict(wanted)
                self._touch(name)

    def mark(self, name: str, state: NodeState, now: float) -> None:
        """A power decision: `sleeping` (sent), `waking` (sent), `failed`, or a cleared node."""
        self._set_state(self._node(name, now), state, now)

    def expire(self, now: float) -> list[str]:
        """Nodes silent for `offline_after`: online ones go offline (returned, for the log),
        sleeping ones asleep (suspended hosts say nothing)."""
        gone = []
        for node in self.nodes.values():
            silent = node.last_seen is None or now - node.last_seen > self._offline_after_s
            if not silent or now - node.state_since <= self._offline_after_s:
                continue
            if node.state is NodeState.ONLINE:
                self._set_state(node, NodeState.OFFLINE, now)
                self._touch(node.name)
                gone.append(node.name)
            elif node.state is NodeState.SLEEPING:
                self._set_state(node, NodeState.ASLEEP, now)
                self._touch(node.name)
        return gone

    def take_changed(self) -> list[NodeView]:
        changed = [dataclasses.replace(self.nodes[n]) for n in sorted(self.changed)]
        self.changed.clear()
        return changed
