"""What one pass feeds the pure policy, built the same way by the daemon and the simulator.

Each pass turns the world (registry views, or the simulator's nodes) into the frozen inputs
of `placement.scheduler.schedule` and `power.policy.decide`. The glue between the two (which
nodes placement sees as awake, how long a resume is expected to take, why a wake is wanted,
which sleeps count against the rate limit, when a node is idle and whether a pending job
could use it) lives here once, so "the simulator only swaps the clock and the world" holds:
`tests/unit/test_simulator.py` asserts both callers hold these very objects.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Reversible, Sequence
from dataclasses import dataclass

from coordinator.core.nodestate import NodeState, placement_power
from coordinator.placement.filters import never_fits, node_available
from coordinator.placement.model import NodeSnapshot, Request
from coordinator.placement.scheduler import Plan
from coordinator.power.policy import (
    SLEEP_WINDOW_S,
    NodePower,
    PowerPolicy,
    WakeWanted,
    idle_since,
)
from shared.messages import Hello

LATENCY_SAMPLES = 50  # resumes kept per node
POOL_SAMPLES = 500  # kept per shape and for the fleet
MIN_LATENCIES = 3  # a pool speaks for a node once it holds this many
RECENT_SLEEPS_MAX = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class Shape:
    """A node's capacity: from its hello (daemon) or its node type (simulator)."""

    cpus: int
    mem_bytes: int
    gpus: tuple[int, ...]
    labels: Mapping[str, str]


def node_snapshot(
    name: str,
    state: NodeState,
    shape: Shape,
    *,
    connections: int,
    util_pct: float,
    resume_latency_s: float,
) -> NodeSnapshot:
    """What placement sees of one node."""
    return NodeSnapshot(
        name=name,
        power=placement_power(state),
        cpus=shape.cpus,
        mem_bytes=shape.mem_bytes,
        gpus=shape.gpus,
        labels=dict(shape.labels),
        connections=connections,
        util_pct=util_pct,
        resume_latency_s=resume_latency_s,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """What runs on a node now, and how busy it is, for the power policy."""

    jobs: int  # placed or running
    used_gpus: int
    cpu_util_pct: float | None
    gpu_util_pct: float | None
    last_call_at: float | None = None  # the last affinity call routed there (`pick`)


def node_power(
    name: str,
    state: NodeState,
    state_since: float,
    *,
    gpus: int,
    usage: Usage,
    idle_before: float | None,
    wanted: bool,
    now: float,
    policy: PowerPolicy,
    can_sleep: bool = True,
    can_wake: bool = True,
    resume_p95_s: float | None = None,
    first_wakes: bool = False,
) -> NodePower:
    """What the power policy sees of one node; `idle_before` is the last pass's `idle_since`
    (an idle timer only runs while the node is online). An affinity call restarts the timer:
    a node whose warm caches still draw traffic is not idle."""
    idle = idle_since(
        idle_before if state is NodeState.ONLINE else None,
        cpu_util_pct=usage.cpu_util_pct,
        gpu_util_pct=usage.gpu_util_pct,
        jobs=usage.jobs,
        ts=now,
        policy=policy,
    )
    if idle is not None and usage.last_call_at is not None:
        idle = max(idle, min(usage.last_call_at, now))
    return NodePower(
        name=name,
        state=state,
        state_since=state_since,
        idle_since=idle,
        jobs=usage.jobs,
        wanted=wanted,
        gpus=gpus,
        free_gpus=max(0, gpus - usage.used_gpus),
        can_sleep=can_sleep,
        can_wake=can_wake,
        resume_p95_s=resume_p95_s,
        first_wakes=first_wakes,
    )


def wanted_by(waiting: Iterable[Request], snapshot: NodeSnapshot | None) -> bool:
    """A job that placement left waiting could run on the node once awake and empty (so it
    must not sleep); a drained node or sick GPUs are not wanted."""
    if snapshot is None:
        return False
    return any(never_fits(r, snapshot, ignoring=(node_available,)) is None for r in waiting)


def wake_reasons(plan: Plan) -> tuple[WakeWanted, ...]:
    return tuple(
        WakeWanted(w.node, f"job {w.job_id} cannot start on awake nodes") for w in plan.wakes
    )


def recent_sleeps(sleeps: Reversible[float], now: float) -> tuple[float, ...]:
    """The sleeps that count against `max_sleeps_per_min` at `now`, oldest first. `sleeps`
    is in the order they were sent (a list, or the daemon's bounded deque); at most the
    newest `RECENT_SLEEPS_MAX` are looked at."""
    recent = list(itertools.islice(reversed(sleeps), RECENT_SLEEPS_MAX))
    return tuple(t for t in reversed(recent) if now - t < SLEEP_WINDOW_S)


class ResumeLatencies:
    """Measured wake times (command to first sample), per node, pooled per shape (a node's
    cpus and GPUs) and for the fleet. A node's figures come from its own resumes once it has
    `MIN_LATENCIES`, else from its shape's, else the fleet's, else the configured guess.
    The daemon fills it from the store's `resumed` events at start, so it survives restarts."""

    def __init__(self) -> None:
        self._by_node: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=LATENCY_SAMPLES))
        self._by_shape: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=POOL_SAMPLES))
        self._fleet: deque[float] = deque(maxlen=POOL_SAMPLES)
        self._shapes: dict[str, str] = {}
        self.version = 0  # counts records: every node's estimate may move with a pool
        self._quantiles: dict[tuple[int, float], float | None] = {}  # (pool, q): until a record

    def record(self, node: str, seconds: float, shape: str | None = None) -> None:
        self.version += 1
        self._quantiles.clear()
        self._by_node[node].append(seconds)
        self._fleet.append(seconds)
        shape = shape or self._shapes.get(node)
        if shape is not None:
            self._shapes[node] = shape
            self._by_shape[shape].append(seconds)

    def seen(self, node: str, shape: str | None = None) -> Sequence[float]:
        """The resumes a node's figures are taken from (its own, its shape's or the fleet's)."""
        shape = shape or self._shapes.get(node)
        for pool in (self._by_node.get(node), self._by_shape.get(shape or ""), self._fleet):
            if pool is not None and len(pool) >= MIN_LATENCIES:
                return pool
        return ()

    def quantile(self, node: str, q: float, shape: str | None = None) -> float | None:
        """Kept per pool until the next record: a pass asks it of many nodes alike."""
        pool = self.seen(node, shape)
        key = (id(pool), q)
        if key not in self._quantiles:
            self._quantiles[key] = quantile(pool, q)
        return self._quantiles[key]

    def fleet_estimate(self, default_s: float) -> float:
        """The fleet's p95 wake time: the margin for a job that may land on any node."""
        p95 = quantile(self._fleet, 0.95) if len(self._fleet) >= MIN_LATENCIES else None
        return default_s if p95 is None else p95

    def own(self, node: str) -> tuple[float, ...]:
        return tuple(self._by_node.get(node, ()))

    def first_wakes(self, node: str) -> bool:
        """Too few of the node's own wakes measured to speak for it (its figures are its
        shape's or the fleet's, if any): the power policy's `first_wake_timeout` applies."""
        return len(self._by_node.get(node, ())) < MIN_LATENCIES

    def estimate(self, node: str, default_s: float, shape: str | None = None) -> float:
        """What deadline planning allows for a wake: the p95, so 19 wakes in 20 are in time."""
        p95 = self.quantile(node, 0.95, shape)
        return default_s if p95 is None else p95


def shape_key(cpus: int, gpus: int) -> str:
    """Nodes alike for wake times: the same CPUs and GPUs (likely the same model)."""
    return f"{cpus}cpu/{gpus}gpu"


def hello_shape(hello: Hello | None) -> str | None:
    return None if hello is None else shape_key(hello.cpus, len(hello.gpus))


def quantile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank quantile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]
