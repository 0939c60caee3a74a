"""With `decides = "dormouse"`: dormouse's power decisions become requests to Slurm (pure),
so Slurm stays the source of truth for its nodes: a sleep is `State=POWER_DOWN` (Slurm then
runs SuspendProgram, which is `dormouse-slurm-suspend`), a wake is `State=POWER_UP`. Asked
only of a node in the state Slurm would accept it from, and not again while Slurm works."""

from __future__ import annotations

from collections.abc import Mapping

from coordinator.slurm.nodes import SlurmNode

ASK_AGAIN_S = 120.0  # Slurm's SuspendTimeout/ResumeTimeout are longer; a repeat is noise


def slurm_state_for(kind: str, node: SlurmNode | None) -> str | None:
    """The `State=` to ask for a dormouse `sleep` or `wake` of this node, or None when Slurm
    would refuse it now (busy, drained, already on its way) or does not know the node."""
    if node is None:
        return None
    if kind == "sleep" and node.idle:
        return "POWER_DOWN"
    if kind == "wake" and node.powered_down and "POWERING_UP" not in node.states:
        return "POWER_UP"
    return None


def due(asked: Mapping[str, float], node: str, now: float) -> bool:
    last = asked.get(node)
    return last is None or now - last >= ASK_AGAIN_S
