"""Live node state, pure: hello, status and telemetry in, node views out.

States here are the ingest part of the design's machine: `online`, `sleeping` (the agent said
so), `offline` (its Last Will, or no telemetry for `offline_after`). The power issue adds
idle, asleep, waking and failed on top.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from shared.messages import Hello, Status, TelemetryBatch


@dataclass
class NodeView:
    name: str
    state: str
    state_since: float
    last_seen: float | None = None
    hello: Hello | None = None
    latest: dict[str, Any] = field(default_factory=dict)


def summarise(batch: TelemetryBatch) -> dict[str, Any]:
    """What `dormouse nodes` shows, from the newest sample of a batch."""
    sample = batch.samples[-1]
    gpu_utils = [g.metrics.get("gpu_util_pct") for g in sample.gpus]
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
        "power_w": metrics.get("power_w"),
        "jobs": metrics.get("jobs_running"),
        "connections": metrics.get("connections"),
    }


class Registry:
    def __init__(self, offline_after_s: float, nodes: list[NodeView] | None = None) -> None:
        self._offline_after_s = offline_after_s
        self.nodes: dict[str, NodeView] = {n.name: n for n in nodes or []}
        self.changed: set[str] = set()

    def _node(self, name: str, now: float) -> NodeView:
        if name not in self.nodes:
            self.nodes[name] = NodeView(name=name, state="offline", state_since=now)
        self.changed.add(name)
        return self.nodes[name]

    def _set_state(self, node: NodeView, state: str, now: float) -> None:
        if node.state != state:
            node.state, node.state_since = state, now

    def on_hello(self, hello: Hello, now: float) -> None:
        self._node(hello.node, now).hello = hello

    def on_status(self, status: Status, now: float) -> None:
        self._set_state(self._node(status.node, now), status.state, now)

    def on_telemetry(self, batch: TelemetryBatch, now: float) -> None:
        node = self._node(batch.node, now)
        node.last_seen = now
        if node.latest.get("seq", -1) < batch.seq_last:  # a resent old batch is not "latest"
            node.latest = summarise(batch)
        if node.state == "offline":
            self._set_state(node, "online", now)

    def expire(self, now: float) -> list[str]:
        """Online nodes silent for `offline_after`: now offline. Returns their names."""
        gone = []
        for node in self.nodes.values():
            silent = node.last_seen is None or now - node.last_seen > self._offline_after_s
            if node.state == "online" and silent and now - node.state_since > self._offline_after_s:
                self._set_state(node, "offline", now)
                self.changed.add(node.name)
                gone.append(node.name)
        return gone

    def take_changed(self) -> list[NodeView]:
        changed = [dataclasses.replace(self.nodes[n]) for n in sorted(self.changed)]
        self.changed.clear()
        return changed
