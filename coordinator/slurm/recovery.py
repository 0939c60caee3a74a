"""What to do about the nodes Slurm holds DOWN after a resume (pure: Slurm's and dormouse's
views and the clock in, steps out; `coordinator.daemon.slurm_bridge` carries them out).

A node Slurm marked DOWN because it missed `ResumeTimeout` (or that stopped answering) is
ours to mend: once its agent is back, `scontrol update State=RESUME` returns it to service,
with no operator action for a node that was merely slow. While the agent is not back, the
wake is tried again, each time through the node's next wake method, after a backoff that
doubles from `rewake_after` up to `REWAKE_MAX_S`, and Slurm's reason for the node says why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from coordinator.core.nodestate import NodeState
from coordinator.slurm.nodes import SlurmNode

REWAKE_MAX_S = 1800.0
LATE_REASONS = ("Node unexpectedly rebooted",)
WOKEN_LATELY_S = 3600.0  # a node back from a dormouse wake this recently may be ours


@dataclass(frozen=True, slots=True)
class Retry:
    """dormouse's own steps (wakes, resumes) for a node Slurm holds DOWN."""

    tries: int
    last_at: float


@dataclass(frozen=True, slots=True)
class Step:
    kind: Literal["resume", "wake"]
    slurm: str  # Slurm's name for the node
    node: str  # dormouse's
    why: str
    attempt: int = 0  # which try (0 is the first); for a wake it picks the wake method


def backoff(tries: int, first_s: float) -> float:
    """Seconds from the last try to the next: first_s, 2 x, 4 x, ... up to REWAKE_MAX_S."""
    return min(first_s * 2 ** max(0, tries - 1), REWAKE_MAX_S)


def stuck_nodes(slurm_nodes: Sequence[SlurmNode], before: set[str]) -> set[str]:
    """Slurm's names of the nodes that are ours to mend: DOWN for a power reason, or DOWN
    with the reason a late host's registration gives ("Node unexpectedly rebooted") when it
    is in `before`: seen stuck at an earlier read, or woken by dormouse lately (a host that
    registers just after ResumeTimeout is never seen with Slurm's first reason). A reason a
    person sets is theirs."""
    return {
        n.name
        for n in slurm_nodes
        if n.stuck or (n.down and n.name in before and n.reason.startswith(LATE_REASONS))
    }


def woken_lately(
    slurm_names: Iterable[str],
    resumed_at: Mapping[str, float],
    now: float,
    dormouse_name: Callable[[str], str] = str,
) -> set[str]:
    """Slurm's names of the nodes back from a dormouse wake within `WOKEN_LATELY_S`."""
    return {
        name
        for name in slurm_names
        if (back := resumed_at.get(dormouse_name(name))) is not None and now - back < WOKEN_LATELY_S
    }


def recover(
    slurm_nodes: Sequence[SlurmNode],
    stuck: set[str],
    states: Mapping[str, NodeState],
    retries: Mapping[str, Retry],
    now: float,
    *,
    rewake_after_s: float,
    dormouse_name: Callable[[str], str] = str,
) -> list[Step]:
    """A step per stuck node (`stuck_nodes`) dormouse knows: resume it when its agent is
    online; wake it again when due and no wake is in flight. Nodes dormouse does not know
    are left alone."""
    steps = []
    for slurm_node in slurm_nodes:
        node = dormouse_name(slurm_node.name)
        state = states.get(node)
        retry = retries.get(node)
        if slurm_node.name not in stuck or state in (None, NodeState.WAKING):
            continue
        if retry is not None and now - retry.last_at < backoff(retry.tries, rewake_after_s):
            continue
        said = slurm_node.reason or "no reason"
        tries = retry.tries if retry else 0
        if state is NodeState.ONLINE:
            why = f"its agent is back (Slurm held it DOWN: {said})"
            steps.append(Step("resume", slurm_node.name, node, why, attempt=tries))
        else:
            why = f"Slurm holds it DOWN ({said}) and its agent is not back: wake try {tries + 1}"
            steps.append(Step("wake", slurm_node.name, node, why, attempt=tries))
    return steps


def still_stuck(retries: Mapping[str, Retry], stuck: set[str], now: float) -> dict[str, Retry]:
    """The retries worth keeping: a stuck node's, and for `REWAKE_MAX_S` after its last
    step a node back in service's (one that falls DOWN again at once, say a slurmd that does
    not answer, is retried with backoff, not on every read)."""
    return {
        node: retry
        for node, retry in retries.items()
        if node in stuck or now - retry.last_at < REWAKE_MAX_S
    }
