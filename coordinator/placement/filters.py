"""Stage 2, filter: small named checks; each answers why a node cannot take a request, or None.

Adding a criterion is adding one function here and to `FILTERS`, with its table test.
"""

from __future__ import annotations

from collections.abc import Callable

from coordinator.placement.model import Free, NodeSnapshot, Power, Request

Filter = Callable[[Request, NodeSnapshot, Free], str | None]


def node_available(request: Request, node: NodeSnapshot, free: Free) -> str | None:
    return None if node.power is not Power.UNAVAILABLE else "unavailable"


def not_drained(request: Request, node: NodeSnapshot, free: Free) -> str | None:
    return "drained" if node.drained else None


def verifies_commands(request: Request, node: NodeSnapshot, free: Free) -> str | None:
    """An agent that cannot verify the coordinator's commands would refuse the job."""
    return None if node.commands_refused is None else "command key"


def healthy_gpus(request: Request, node: NodeSnapshot, free: Free) -> str | None:
    """Enough free GPUs that are neither failed nor drained (`enough_gpus` ran first, so a
    refusal here is health's, not a plain shortage)."""
    if not request.gpus or not node.unusable_gpus:
        return None
    return None if len(free.gpus - node.unusable_gpus) >= request.gpus else "gpu health"


def enough_cpus(request: Request, node: NodeSnapshot, free: Free) -> str | None:
    return None if free.cpus >= request.cpus else "cpus"


def enough_memory(request: Request, node: NodeSnapshot, free: Free) -> str | None:
    return None if free.mem_bytes >= request.mem_bytes else "memory"


def enough_gpus(request: Request, node: NodeSnapshot, free: Free) -> str | None:
    return None if len(free.gpus) >= request.gpus else "gpus"


def labels_match(request: Request, node: NodeSnapshot, free: Free) -> str | None:
    wanted = request.labels.items()
    return None if all(node.labels.get(k) == v for k, v in wanted) else "labels"


FILTERS: tuple[Filter, ...] = (
    node_available,
    not_drained,
    verifies_commands,
    labels_match,
    enough_gpus,
    healthy_gpus,
    enough_cpus,
    enough_memory,
)
TRANSIENT: tuple[Filter, ...] = (  # may pass later
    node_available,
    not_drained,
    verifies_commands,
    healthy_gpus,
)


def rejection(request: Request, node: NodeSnapshot, free: Free) -> str | None:
    """The first filter that refuses the node, or None when it can take the request."""
    for check in FILTERS:
        reason = check(request, node, free)
        if reason is not None:
            return reason
    return None


def whole(node: NodeSnapshot) -> Free:
    """The node's capacity with nothing allocated."""
    return Free(node.cpus, node.mem_bytes, frozenset(node.gpus))


def never_fits(
    request: Request, node: NodeSnapshot, ignoring: tuple[Filter, ...] = TRANSIENT
) -> str | None:
    """Why the node could not take the request even empty (and, by default, awake, undrained
    and repaired: the checks in `ignoring`), or None."""
    for check in FILTERS:
        if check not in ignoring and (reason := check(request, node, whole(node))):
            return reason
    return None
