"""Power policy, pure: node power snapshots and an injected `now` in, actions out.

The daemon and the simulator call the same `decide`. Rules are small named checks, as the
placement filters are: each answers why a node may not sleep (or wake), or None. Manual
`dormouse sleep/wake` use the same checks, less the ones only automatic decisions need.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from coordinator.core.nodestate import NodeState

SLEEP_WINDOW_S = 60.0  # `max_sleeps_per_min` counts the sleeps sent within this window


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerPolicy:
    """The knobs (defaults and meaning: coordinator.settings.Power, docs/power.md)."""

    sleep_idle: bool = False
    idle_after_s: float = 900.0
    cpu_idle_pct: float = 10.0
    gpu_idle_pct: float = 5.0
    min_awake: int = 1
    spare_gpus: int = 0  # with spare = "forecast": the least kept free
    spare: str = "fixed"  # or "forecast": free GPUs sized from demand (power.forecast)
    spare_max_gpus: int = 16  # the most a forecast keeps free
    forecast_alpha: float = 0.5  # the newest week's weight in the forecast
    min_awake_time_s: float = 600.0
    min_asleep_time_s: float = 300.0
    max_sleeps_per_min: int = 2
    resume_timeout_s: float = 300.0  # without measured wakes, or with the factor at 0
    resume_timeout_factor: float = 3.0  # with them: this x the p95 wake time ...
    resume_timeout_floor_s: float = 60.0  # ... but never less than this
    first_wake_timeout_s: float = 900.0  # at least this until a node's own wakes are measured
    never_sleep: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class NodePower:
    """What the policy knows of one node at `now`."""

    name: str
    state: NodeState
    state_since: float
    idle_since: float | None = None  # under the thresholds with no job since; None: busy
    jobs: int = 0  # placed or running
    wanted: bool = False  # a pending job could run there
    gpus: int = 0
    free_gpus: int = 0
    can_sleep: bool = True  # the agent offers a sleep method
    can_wake: bool = True  # the coordinator has a way to wake it
    resume_p95_s: float | None = None  # learned wake time (its own, its shape's, the fleet's)
    first_wakes: bool = False  # its own wakes are not measured yet (the p95 is borrowed)


@dataclass(frozen=True, slots=True)
class Action:
    kind: str  # "sleep", "wake" or "fail"
    node: str
    reason: str


@dataclass(frozen=True, slots=True)
class WakeWanted:
    """Placement wants this node awake (a job that cannot start on awake nodes)."""

    node: str
    reason: str


def idle_since(
    previous: float | None,
    *,
    cpu_util_pct: float | None,
    gpu_util_pct: float | None,
    jobs: int,
    ts: float,
    policy: PowerPolicy,
) -> float | None:
    """Since when the node has been idle: kept while under both thresholds with no job."""
    busy = jobs > 0 or (cpu_util_pct or 0.0) > policy.cpu_idle_pct
    busy = busy or (gpu_util_pct or 0.0) > policy.gpu_idle_pct
    if busy:
        return None
    return ts if previous is None else previous


SleepRule = Callable[[NodePower, PowerPolicy, float], str | None]


def is_online(node: NodePower, policy: PowerPolicy, now: float) -> str | None:
    return None if node.state is NodeState.ONLINE else f"it is {node.state}, not online"


def not_exempt(node: NodePower, policy: PowerPolicy, now: float) -> str | None:
    return "it is in never_sleep" if node.name in policy.never_sleep else None


def sleep_capable(node: NodePower, policy: PowerPolicy, now: float) -> str | None:
    if not node.can_sleep:
        return "its agent offers no sleep method"
    return None if node.can_wake else "the coordinator has no way to wake it (no MAC, no command)"


def no_work(node: NodePower, policy: PowerPolicy, now: float) -> str | None:
    return f"{node.jobs} job(s) placed or running on it" if node.jobs else None


def idle_long_enough(node: NodePower, policy: PowerPolicy, now: float) -> str | None:
    if node.idle_since is None:
        return "it is busy"
    idle = now - node.idle_since
    return None if idle >= policy.idle_after_s else f"idle {idle:.0f}s of {policy.idle_after_s:g}s"


def not_wanted(node: NodePower, policy: PowerPolicy, now: float) -> str | None:
    return "a pending job could run on it" if node.wanted else None


def awake_long_enough(node: NodePower, policy: PowerPolicy, now: float) -> str | None:
    up = now - node.state_since
    if up >= policy.min_awake_time_s:
        return None
    return f"awake {up:.0f}s, min_awake_time is {policy.min_awake_time_s:g}s"


MANUAL_SLEEP_RULES: tuple[SleepRule, ...] = (is_online, not_exempt, sleep_capable, no_work)
SLEEP_RULES: tuple[SleepRule, ...] = (
    *MANUAL_SLEEP_RULES,
    idle_long_enough,
    not_wanted,
    awake_long_enough,
)


def first_reason(
    rules: Iterable[SleepRule], node: NodePower, policy: PowerPolicy, now: float
) -> str | None:
    for rule in rules:
        reason = rule(node, policy, now)
        if reason is not None:
            return reason
    return None


def floor_reason(asleep: NodePower, awake: Sequence[NodePower], policy: PowerPolicy) -> str | None:
    """Why putting `asleep` to sleep would leave too little awake (`awake` includes it)."""
    rest = [n for n in awake if n.name != asleep.name]
    if len(rest) < policy.min_awake:
        return f"min_awake is {policy.min_awake}: {len(rest)} node(s) would stay awake"
    spare = sum(n.free_gpus for n in rest)
    if policy.spare_gpus and spare < policy.spare_gpus:
        return f"spare_gpus is {policy.spare_gpus}: {spare} free GPU(s) would stay awake"
    return None


def counts_awake(node: NodePower) -> bool:
    """Awake for the floor: up now, or on its way back."""
    return node.state in {NodeState.ONLINE, NodeState.WAKING}


def sleep_refusal(
    node: NodePower, nodes: Sequence[NodePower], policy: PowerPolicy, now: float
) -> str | None:
    """Why `dormouse sleep NODE` is refused, or None."""
    reason = first_reason(MANUAL_SLEEP_RULES, node, policy, now)
    return reason or floor_reason(node, [n for n in nodes if counts_awake(n)], policy)


def wake_refusal(node: NodePower, policy: PowerPolicy, now: float) -> str | None:
    """Why waking the node is refused (manual or for placement), or None."""
    if node.state is NodeState.FAILED:
        return "it failed to resume before: `dormouse clear` it first"
    if node.state is not NodeState.ASLEEP:
        return f"it is {node.state}, not asleep"
    if not node.can_wake:
        return "the coordinator has no way to wake it (no MAC, no command)"
    asleep = now - node.state_since
    if asleep < policy.min_asleep_time_s:
        return f"asleep {asleep:.0f}s, min_asleep_time is {policy.min_asleep_time_s:g}s"
    return None


def decide(
    nodes: Sequence[NodePower],
    wanted: Sequence[WakeWanted],
    policy: PowerPolicy,
    now: float,
    recent_sleeps: Sequence[float] = (),
    *,
    pool: int | None = None,
) -> list[Action]:
    """This tick's actions: failures first, then wakes placement asked for, then wakes
    that build a forecast spare pool, then sleeps.

    `recent_sleeps` are the times of sleeps sent before (for `max_sleeps_per_min`). `pool`
    (with `spare = "forecast"`): the free GPUs to have awake now; asleep nodes are woken
    to reach it, and it replaces `spare_gpus` in the floor.
    """
    actions = failures(nodes, policy, now)
    failed = {a.node for a in actions}
    nodes = [replace(n, state=NodeState.FAILED) if n.name in failed else n for n in nodes]
    actions += wakes(nodes, wanted, policy, now)
    if pool is not None:
        actions += pool_wakes(as_woken(nodes, actions), pool, policy, now)
        policy = replace(policy, spare_gpus=pool)
    nodes = as_woken(nodes, actions)
    if policy.sleep_idle:
        actions += sleeps(nodes, policy, now, recent_sleeps)
    return actions


def as_woken(nodes: Sequence[NodePower], actions: Sequence[Action]) -> list[NodePower]:
    """The nodes as this pass leaves them: those it wakes are waking."""
    woken = {a.node for a in actions if a.kind == "wake"}
    return [replace(n, state=NodeState.WAKING) if n.name in woken else n for n in nodes]


def pool_order(node: NodePower) -> tuple[bool, float, str]:
    """Which asleep node a spare pool wakes first: the fastest to wake (learned), then name."""
    return (node.resume_p95_s is None, node.resume_p95_s or 0.0, node.name)


def pool_wakes(
    nodes: Sequence[NodePower], pool: int, policy: PowerPolicy, now: float
) -> list[Action]:
    """Asleep nodes with GPUs woken, fastest first, until `pool` free GPUs are awake or
    waking (`nodes` already shows this pass's wakes as waking)."""
    free = sum(n.free_gpus for n in nodes if counts_awake(n))
    return wakes_for_pool(free, nodes, pool, policy, now)


def wakes_for_pool(
    free: int, candidates: Iterable[NodePower], pool: int, policy: PowerPolicy, now: float
) -> list[Action]:
    """With `free` GPUs awake, the candidates (asleep nodes with GPUs among them) to wake,
    fastest first, until `pool` is reached."""
    actions: list[Action] = []
    for node in sorted((n for n in candidates if n.gpus), key=pool_order):
        if free >= pool:
            break
        if wake_refusal(node, policy, now) is None:
            why = f"spare pool: {pool} free GPU(s) forecast, {free} awake"
            actions.append(Action("wake", node.name, why))
            free += node.free_gpus
    return actions


def resume_timeout(node: NodePower, policy: PowerPolicy) -> tuple[float, str]:
    """How long a woken node may take, and why: k x its learned p95 wake time (a slow but
    healthy node is not failed, a dead fast one is noticed sooner), never under the floor;
    the fixed `resume_timeout` until wakes have been measured. A node whose own wakes are
    not measured yet gets at least `first_wake_timeout`: figures borrowed from its shape or
    the fleet (or none) say nothing of how slow this one is, and failing a slow new node
    keeps it out for an hour (the fixed timeout did that to every slow node)."""
    limit, why = learned_timeout(node.resume_p95_s, policy)
    unknown = policy.resume_timeout_factor > 0 and node.first_wakes
    if unknown and policy.first_wake_timeout_s > limit:
        return policy.first_wake_timeout_s, "first_wake_timeout: its own wakes not measured"
    return limit, why


def learned_timeout(p95: float | None, policy: PowerPolicy) -> tuple[float, str]:
    """k x `p95`, never under the floor; the fixed timeout without one (or with k at 0)."""
    if p95 is None or policy.resume_timeout_factor <= 0:
        return policy.resume_timeout_s, "resume_timeout"
    why = f"{policy.resume_timeout_factor:g} x p95 {p95:.0f}s"
    learned = policy.resume_timeout_factor * p95
    if learned < policy.resume_timeout_floor_s:
        return policy.resume_timeout_floor_s, f"the floor, over {why}"
    return learned, why


def failures(nodes: Iterable[NodePower], policy: PowerPolicy, now: float) -> list[Action]:
    actions = []
    for n in nodes:
        limit, why = resume_timeout(n, policy)
        if n.state is NodeState.WAKING and now - n.state_since > limit:
            took = now - n.state_since
            reason = f"not back {took:.0f}s after the wake (timeout {limit:.0f}s: {why})"
            actions.append(Action("fail", n.name, reason))
    return actions


def wakes(
    nodes: Sequence[NodePower], wanted: Sequence[WakeWanted], policy: PowerPolicy, now: float
) -> list[Action]:
    by_name = {n.name: n for n in nodes}
    actions: list[Action] = []
    for want in wanted:
        node = by_name.get(want.node)
        if node is None or any(a.node == want.node for a in actions):
            continue
        if wake_refusal(node, policy, now) is None:
            actions.append(Action("wake", node.name, want.reason))
    return actions


def sleeps(
    nodes: Sequence[NodePower], policy: PowerPolicy, now: float, recent_sleeps: Sequence[float]
) -> list[Action]:
    """Idle nodes, longest idle first, while the rate limit and the floor allow."""
    budget = policy.max_sleeps_per_min - sum(1 for t in recent_sleeps if now - t < SLEEP_WINDOW_S)
    awake = [n for n in nodes if counts_awake(n)]
    candidates = [n for n in awake if first_reason(SLEEP_RULES, n, policy, now) is None]
    candidates.sort(key=lambda n: (n.idle_since or now, n.name))
    actions: list[Action] = []
    for node in candidates:
        if budget <= 0:
            break
        if floor_reason(node, awake, policy) is not None:
            continue
        idle = now - (node.idle_since or now)
        actions.append(Action("sleep", node.name, f"idle for {idle:.0f}s"))
        awake = [n for n in awake if n.name != node.name]
        budget -= 1
    return actions


def manual_refusal(
    action: str,
    node: NodePower,
    nodes: Sequence[NodePower],
    policy: PowerPolicy,
    now: float,
    *,
    force: bool = False,
) -> str | None:
    """Why `dormouse sleep/wake/clear NODE` is refused. `--force` skips the policy, not the
    facts: a sleep goes only to an online node (whose agent still refuses while jobs run),
    a wake only to a node that is not online."""
    if action == "clear":
        return None if node.state is NodeState.FAILED else f"it is {node.state}, not failed"
    if action == "sleep":
        if force:
            return None if node.state is NodeState.ONLINE else f"it is {node.state}, not online"
        return sleep_refusal(node, nodes, policy, now)
    if force:
        return "it is online" if node.state is NodeState.ONLINE else None
    return wake_refusal(node, policy, now)
