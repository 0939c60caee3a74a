"""The power policy's view kept across passes: node timers in order, so a pass costs what is due.

`policy.decide` is the definition: every node through every rule. `PowerBook` keeps each
node's `NodePower` and three sorted timers (idle online nodes by "may sleep at", waking nodes
by "resume timeout at", asleep nodes by "may wake at") plus the awake count and free GPUs the
floor needs, so `decide` looks only at nodes whose timer is due and at the nodes placement
wants woken. Same actions as `policy.decide` over all nodes (a property test checks it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from sortedcontainers import SortedList

from coordinator.core.nodestate import NodeState
from coordinator.power.policy import (
    SLEEP_RULES,
    SLEEP_WINDOW_S,
    Action,
    NodePower,
    PowerPolicy,
    WakeWanted,
    counts_awake,
    failures,
    first_reason,
    resume_timeout,
    wakes,
    wakes_for_pool,
)

SLACK_S = 1e-3  # timers are read this early; the rules themselves then decide exactly
LAST = "\U0010ffff"  # sorts after every node name
Timer = tuple[float, str]


class PowerBook:
    def __init__(self, policy: PowerPolicy) -> None:
        self.policy = policy
        self.nodes: dict[str, NodePower] = {}
        self._order: dict[str, int] = {}  # first seen: failures come out in this order
        self._idle: SortedList[Timer] = SortedList()
        self._waking: SortedList[Timer] = SortedList()
        self._asleep: SortedList[Timer] = SortedList()
        self._timer: dict[str, tuple[SortedList[Timer], Timer]] = {}
        self.awake = 0  # nodes online or waking (the floor counts them)
        self.awake_free_gpus = 0

    def put(self, node: NodePower) -> None:
        """A node's power view changed (state, timers, jobs, GPUs, learned wake time)."""
        old = self.nodes.get(node.name)
        if old == node:
            return
        if old is not None:
            self._forget(old)
        self._order.setdefault(node.name, len(self._order))
        self.nodes[node.name] = node
        if counts_awake(node):
            self.awake += 1
            self.awake_free_gpus += node.free_gpus
        timer = self._timer_of(node)
        if timer is not None:
            timer[0].add(timer[1])
            self._timer[node.name] = timer

    def drop(self, name: str) -> None:
        node = self.nodes.pop(name, None)
        if node is not None:
            self._forget(node)

    def _forget(self, node: NodePower) -> None:
        if counts_awake(node):
            self.awake -= 1
            self.awake_free_gpus -= node.free_gpus
        timer = self._timer.pop(node.name, None)
        if timer is not None:
            timer[0].remove(timer[1])

    def _timer_of(self, node: NodePower) -> tuple[SortedList[Timer], Timer] | None:
        policy = self.policy
        if node.state is NodeState.ONLINE and not node.jobs and node.idle_since is not None:
            due = max(
                node.idle_since + policy.idle_after_s, node.state_since + policy.min_awake_time_s
            )
            return self._idle, (due, node.name)
        if node.state is NodeState.WAKING:
            due = node.state_since + resume_timeout(node, policy)[0]
            return self._waking, (due, node.name)
        if node.state is NodeState.ASLEEP:
            return self._asleep, (node.state_since + policy.min_asleep_time_s, node.name)
        return None

    def decide(
        self,
        wanted: Sequence[WakeWanted],
        now: float,
        recent_sleeps: Sequence[float] = (),
        is_wanted: Callable[[NodePower], bool] | None = None,
        pool: int | None = None,
    ) -> list[Action]:
        """`policy.decide` over every node in the book. `is_wanted` says whether a pending
        job could run on a node (the book's own `wanted` is read when it is None); it is asked
        only of nodes due to sleep, longest idle first, until the rate limit is reached.
        `pool`: a forecast spare pool, as `policy.decide` takes it."""
        actions = self._failures(now)
        failed = {a.node for a in actions}
        actions += self._wakes(wanted, failed, now)
        if pool is not None:
            actions += self._pool_wakes(pool, failed, actions, now)
        if self.policy.sleep_idle:
            woken = [self.nodes[a.node] for a in actions if a.kind == "wake"]
            spare = self.policy.spare_gpus if pool is None else pool
            actions += self._sleeps(
                now, recent_sleeps, failed, woken, is_wanted=is_wanted, spare_gpus=spare
            )
        return actions

    def _due(self, timers: SortedList[Timer], now: float) -> list[NodePower]:
        return [self.nodes[name] for _, name in timers.irange(maximum=(now + SLACK_S, LAST))]

    def _failures(self, now: float) -> list[Action]:
        """`policy.failures` over the waking nodes whose timeout is due, in fleet order."""
        due = sorted(self._due(self._waking, now), key=lambda n: self._order[n.name])
        return failures(due, self.policy, now)

    def _wakes(self, wanted: Sequence[WakeWanted], failed: set[str], now: float) -> list[Action]:
        """`policy.wakes` over the nodes placement wants woken (failed ones as failed)."""
        named = {w.node: self.nodes[w.node] for w in wanted if w.node in self.nodes}
        nodes = [
            replace(n, state=NodeState.FAILED) if n.name in failed else n for n in named.values()
        ]
        return wakes(nodes, wanted, self.policy, now)

    def _pool_wakes(
        self, pool: int, failed: set[str], actions: list[Action], now: float
    ) -> list[Action]:
        """`policy.pool_wakes`: asleep nodes are read only when the pool falls short."""
        woken = [self.nodes[a.node] for a in actions if a.kind == "wake"]
        free = self.awake_free_gpus - sum(self.nodes[n].free_gpus for n in failed)
        free += sum(n.free_gpus for n in woken)
        if free >= pool:
            return []
        taken = {n.name for n in woken}
        asleep = (self.nodes[name] for _, name in self._asleep if name not in taken)
        return wakes_for_pool(free, asleep, pool, self.policy, now)

    def _sleeps(
        self,
        now: float,
        recent_sleeps: Sequence[float],
        failed: set[str],
        woken: Sequence[NodePower],
        *,
        is_wanted: Callable[[NodePower], bool] | None,
        spare_gpus: int,
    ) -> list[Action]:
        """Longest idle first, while the rate limit and the floor allow (`policy.sleeps`)."""
        policy = self.policy
        budget = policy.max_sleeps_per_min - sum(
            1 for t in recent_sleeps if now - t < SLEEP_WINDOW_S
        )
        if budget <= 0:
            return []
        gone = [self.nodes[name] for name in failed]
        awake = self.awake - len(gone) + len(woken)
        free_gpus = self.awake_free_gpus - sum(n.free_gpus for n in gone)
        free_gpus += sum(n.free_gpus for n in woken)
        actions: list[Action] = []
        due = sorted(self._due(self._idle, now), key=lambda n: (n.idle_since or now, n.name))
        for node in due:  # in `policy.sleeps`' order: rules are asked only until the budget is out
            if budget <= 0:
                break
            if first_reason(SLEEP_RULES, node, policy, now) is not None:
                continue
            if awake - 1 < policy.min_awake:
                continue
            if spare_gpus and free_gpus - node.free_gpus < spare_gpus:
                continue
            if is_wanted is not None and is_wanted(node):  # the dearest check, asked last
                continue
            idle = now - (node.idle_since or now)
            actions.append(Action("sleep", node.name, f"idle for {idle:.0f}s"))
            awake -= 1
            free_gpus -= node.free_gpus
            budget -= 1
        return actions

    def waking(self) -> list[str]:
        """The nodes waking now (their resume timeouts run)."""
        return [name for _, name in self._waking]

    def next_due(self, now: float, wakes_wanted: bool, recent: Sequence[float]) -> float | None:
        """The next time the policy could decide otherwise with nothing else happening: an
        idle node's timers, a waking node's timeout, the rate limit, a wanted wake."""
        due = [_after(self._idle, now, 0.0), _after(self._waking, now, 1e-6)]
        if wakes_wanted:
            due.append(_after(self._asleep, now, 0.0))
        if recent and len(recent) >= self.policy.max_sleeps_per_min:
            window = min(recent) + SLEEP_WINDOW_S
            due.append(window if window > now else None)
        return min((t for t in due if t is not None), default=None)


def _after(timers: SortedList[Timer], now: float, pad: float) -> float | None:
    """The first timer (+ `pad`) later than `now`."""
    for at, _ in timers.irange(minimum=(now - SLACK_S, "")):
        if at + pad > now:
            return at + pad
    return None
