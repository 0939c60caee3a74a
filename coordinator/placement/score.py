"""Stage 4, score: lower is better. Healthy GPUs first, then least connections, then lowest
utilisation, then name.

`SCORERS` is the ordered list; the composite key compares them in turn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from coordinator.placement.model import Free, NodeSnapshot

Scorer = Callable[[NodeSnapshot, Free], Any]


def healthy_first(node: NodeSnapshot, free: Free) -> int:
    """1 while a degraded GPU is among the node's free ones: such nodes come after every node
    without one, so a degraded GPU gets work only when no other node fits (and on its node,
    `select.assign_gpus` hands out the healthy ones first)."""
    return 1 if node.degraded_gpus and not node.degraded_gpus.isdisjoint(free.gpus) else 0


def least_connections(node: NodeSnapshot, free: Free) -> int:
    """Active jobs (placed or running) plus established service connections."""
    return free.jobs + node.connections


def lowest_utilisation(node: NodeSnapshot, free: Free) -> float:
    return node.util_pct


def by_name(node: NodeSnapshot, free: Free) -> str:
    return node.name


SCORERS: tuple[Scorer, ...] = (healthy_first, least_connections, lowest_utilisation, by_name)


def score(node: NodeSnapshot, free: Free) -> tuple[Any, ...]:
    return tuple([scorer(node, free) for scorer in SCORERS])
