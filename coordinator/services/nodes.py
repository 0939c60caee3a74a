"""Nodes and the coordinator's own figures, as the store holds them: what `dormouse nodes`
and `dormouse status` show (the daemon writes both)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from coordinator.core.registry import NodeView
from coordinator.core.tick import LATENCY_SAMPLES, quantile
from coordinator.store import nodes as node_rows
from coordinator.store import power as power_rows
from coordinator.store import stats as stat_rows
from coordinator.store.power import WAKE_TIMES
from shared.errors import NotFound

LATEST_FIELDS = (
    "cpu_util_pct",
    "mem_used_bytes",
    "mem_total_bytes",
    "gpus",
    "gpu_util_pct",
    "power_w",
    "jobs",
    "connections",
)


class UnknownNode(NotFound):
    """A node the store has never heard from."""


def summary(view: NodeView) -> dict[str, Any]:
    """One node as `dormouse nodes --json` and `GET /api/v1/nodes` show it (times: epoch s)."""
    latest = view.latest
    return {
        "node": view.name,
        "state": view.state.value,
        "last_seen": view.last_seen,
        **{k: latest[k] for k in LATEST_FIELDS if k in latest},
    }


@dataclass(frozen=True, slots=True)
class Status:
    figures: dict[str, tuple[float, float]]  # key -> (value, when the daemon wrote it)
    store_bytes: int | None


def summaries(engine: sa.Engine) -> list[dict[str, Any]]:
    """Every node's summary, read without the hellos (the listings' fast path)."""
    with engine.connect() as conn:
        return [summary(v) for v in node_rows.load_summaries(conn)]


def names(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return node_rows.known_nodes(conn)


def status(engine: sa.Engine) -> Status:
    with engine.connect() as conn:
        return Status(stat_rows.read_stats(conn), stat_rows.store_size_bytes(conn))


@dataclass(frozen=True, slots=True)
class WakeTimes:
    """A node's measured wakes (command to first sample), as `dormouse node NAME` shows."""

    count: int
    p50_s: float | None
    p95_s: float | None


def wake_times(engine: sa.Engine, node: str, keep: int = LATENCY_SAMPLES) -> WakeTimes:
    """From the store's `resumed` events: the same figures the daemon plans with."""
    with engine.connect() as conn:
        found = power_rows.events(conn, node=node, kinds=WAKE_TIMES, limit=keep)
    seconds = [e.value for e in found if e.value is not None]
    return WakeTimes(len(seconds), quantile(seconds, 0.5), quantile(seconds, 0.95))


def detail(engine: sa.Engine, name: str) -> dict[str, Any]:
    """One node in full: its summary, since when in its state, its measured wakes, its hello."""
    with engine.connect() as conn:
        found = node_rows.load_nodes(conn, name)
        if not found:
            known = ", ".join(node_rows.known_nodes(conn)) or "none yet"
            raise UnknownNode(f"unknown node {name!r}; nodes: {known}")
    view = found[0]
    wakes = wake_times(engine, name)
    return summary(view) | {
        "state_since": view.state_since,
        "wakes_measured": wakes.count,
        "wake_p50_s": wakes.p50_s,
        "wake_p95_s": wakes.p95_s,
        "hello": view.hello.to_wire() if view.hello else None,
    }
