"""Nodes and the coordinator's own figures, as the store holds them: what `dormouse nodes`
and `dormouse status` show (the daemon writes both)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from coordinator.core.jobstate import ON_NODE
from coordinator.core.registry import HEALTHY, NodeView, gpu_health
from coordinator.core.snapshot import key_state
from coordinator.core.tick import LATENCY_SAMPLES, quantile
from coordinator.store import drains as drain_rows
from coordinator.store import jobs as job_rows
from coordinator.store import leadership as leader_rows
from coordinator.store import nodes as node_rows
from coordinator.store import power as power_rows
from coordinator.store import retention
from coordinator.store import stats as stat_rows
from coordinator.store import workers as worker_rows
from coordinator.store.drains import NODE
from coordinator.store.leadership import Leader
from coordinator.store.power import WAKE_TIMES
from coordinator.store.workers import Worker
from shared.config import read_key_file
from shared.errors import ConfigError, NotFound
from shared.gpuhealth import Health
from shared.signing import key_id

WORKERS_SEEN_S = 60.0  # `dormouse status` lists processes that wrote their row this recently
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


__all__ = ["Leader", "Status", "UnknownNode", "Worker"]


class UnknownNode(NotFound):
    """A node the store has never heard from."""


def own_key_id(key_file: Path) -> str | None:
    """The id of the coordinator's command key, where this process may read the key file
    (a user's CLI often may not: nodes then show "unchecked" rather than "ok")."""
    try:
        key = read_key_file(key_file)
    except ConfigError:
        return None
    return None if key is None else key_id(key)


def summary(
    view: NodeView, own_key: str | None = None, agent_key: str | None = None
) -> dict[str, Any]:
    """One node as `dormouse nodes --json` and `GET /api/v1/nodes` show it (times: epoch s).
    `commands`: whether its agent can verify the coordinator's commands (`key_state`), from
    its hello or, read without it, `agent_key`."""
    latest = view.latest
    agent = view.hello.command_key if view.hello is not None else agent_key
    unwell = [health for health, _ in gpu_health(view).values()]
    return {
        "node": view.name,
        "state": view.state.value,
        "last_seen": view.last_seen,
        **{k: latest[k] for k in LATEST_FIELDS if k in latest},
        "drained": NODE in view.drains,
        "gpus_drained": sum(1 for i in view.drains if i != NODE),
        "gpus_failed": unwell.count(Health.FAILED),
        "gpus_degraded": unwell.count(Health.DEGRADED),
        "commands": key_state(agent, own_key),
    }


def gpu_rows(view: NodeView) -> list[dict[str, Any]]:
    """Each GPU the node said hello with: its health, why, and whether it is drained."""
    unwell = gpu_health(view)
    indices = sorted({g.index for g in view.hello.gpus} if view.hello else set(unwell))
    return [
        {
            "index": i,
            "health": unwell.get(i, HEALTHY)[0],
            "reason": unwell.get(i, HEALTHY)[1],
            "drained": i in view.drains,
            "drain_reason": view.drains.get(i),
        }
        for i in indices
    ]


@dataclass(frozen=True, slots=True)
class Status:
    figures: dict[str, tuple[float, float]]  # key -> (value, when the daemon wrote it)
    store_bytes: int | None
    leader: Leader | None = None  # the process leading now (or last), from the store
    workers: tuple[Worker, ...] = ()  # processes heard from in the last WORKERS_SEEN_S
    tier_bytes: dict[str, int] | None = None  # store_bytes_raw, _minute, _hour


def summaries(engine: sa.Engine, own_key: str | None = None) -> list[dict[str, Any]]:
    """Every node's summary, read without the hellos (the listings' fast path)."""
    with engine.connect() as conn:
        keys = node_rows.command_keys(conn)
        return [summary(v, own_key, keys.get(v.name)) for v in node_rows.load_summaries(conn)]


def states(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return node_rows.states(conn)


def names(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return node_rows.known_nodes(conn)


def status(engine: sa.Engine) -> Status:
    seen_since = time.time() - WORKERS_SEEN_S
    with engine.connect() as conn:
        return Status(
            stat_rows.read_stats(conn),
            stat_rows.store_size_bytes(conn),
            leader_rows.current(conn),
            tuple(worker_rows.recent(conn, seen_since)),
            {
                f"store_bytes_{name}": retention.size_bytes(conn, tier)
                for name, tier in zip(("raw", "minute", "hour"), retention.TIERS, strict=True)
            },
        )


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


def detail(engine: sa.Engine, name: str, own_key: str | None = None) -> dict[str, Any]:
    """One node in full: its summary, since when in its state, its measured wakes, its hello."""
    with engine.connect() as conn:
        found = node_rows.load_nodes(conn, name)
        if not found:
            known = ", ".join(node_rows.known_nodes(conn)) or "none yet"
            raise UnknownNode(f"unknown node {name!r}; nodes: {known}")
        events = drain_rows.events(conn, node=name, limit=10)
    view = found[0]
    wakes = wake_times(engine, name)
    return summary(view, own_key) | {
        "state_since": view.state_since,
        "wakes_measured": wakes.count,
        "wake_p50_s": wakes.p50_s,
        "wake_p95_s": wakes.p95_s,
        "drain_reason": view.drains.get(NODE),
        "gpu_health": gpu_rows(view),
        "gpu_events": [dataclasses.asdict(e) for e in events],
        "hello": view.hello.to_wire() if view.hello else None,
    }


def drain(engine: sa.Engine, name: str, gpu: int | None, reason: str, now: float) -> None:
    """No new work on the node (or one of its GPUs) until `undrain`; what runs goes on."""
    with engine.begin() as conn:
        _check_target(conn, name, gpu)
        drain_rows.drain(conn, name, NODE if gpu is None else gpu, reason, now)


def undrain(engine: sa.Engine, name: str, gpu: int | None, now: float) -> bool:
    """False when that drain was not set."""
    with engine.begin() as conn:
        _check_target(conn, name, gpu)
        return drain_rows.undrain(conn, name, NODE if gpu is None else gpu, now)


def _check_target(conn: sa.Connection, name: str, gpu: int | None) -> None:
    found = node_rows.load_nodes(conn, name)
    if not found:
        known = ", ".join(node_rows.known_nodes(conn)) or "none yet"
        raise UnknownNode(f"unknown node {name!r}; nodes: {known}")
    hello = found[0].hello
    if gpu is None or hello is None:
        return
    indices = sorted(g.index for g in hello.gpus)
    if gpu not in indices:
        have = ", ".join(map(str, indices)) or "none"
        raise UnknownNode(f"node {name!r} has no GPU {gpu} (its GPUs: {have})")


@dataclass(frozen=True, slots=True)
class Forgotten:
    forgotten: list[str]
    refused: dict[str, str]  # node -> why it was kept


def forget(engine: sa.Engine, names: list[str], stale_s: float | None, now: float) -> Forgotten:
    """`dormouse nodes forget`: the named nodes, and with `stale_s` every node not heard
    from for that long, leave the fleet (their rows, and every coordinator's memory); their
    history stays until it expires. A node with a job placed or running on it is kept
    (cancel the job first), as is one heard from since the forget was asked (it is alive,
    and its next save writes it back)."""
    with engine.begin() as conn:
        views = {v.name: v for v in node_rows.load_summaries(conn)}
        if unknown := [n for n in names if n not in views]:
            known = ", ".join(views) or "none yet"
            raise UnknownNode(f"unknown node {unknown[0]!r}; nodes: {known}")
        wanted = set(names)
        if stale_s is not None:
            wanted |= {n for n, v in views.items() if (v.last_seen or 0.0) < now - stale_s}
        busy = {j.node for j in job_rows.active(conn) if j.state in ON_NODE and j.node}
        refused = dict.fromkeys(sorted(wanted & busy), "a job is placed or running on it")
        chosen = sorted(wanted - busy)
        node_rows.forget(conn, chosen, now)
    return Forgotten(chosen, refused)
