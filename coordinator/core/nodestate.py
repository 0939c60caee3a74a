"""A node's state as the coordinator sees it, and the one table of what each state means.

States (DESIGN.md, "States"): `online`; `sleeping` (a sleep was sent or the agent said so);
`asleep` (a sleeping node that went quiet: wakeable); `waking` (a wake was sent); `failed`
(not back within `resume_timeout`: excluded until `dormouse clear`); `offline` (its Last
Will or no telemetry for `offline_after`, without a sleep before). Idle is not a state: the
power policy tracks how long an online node has been idle.

The registry, the power loop, the snapshot for placement and the simulator all read
`MEANING`: adding a state is adding one row.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from coordinator.placement.model import Power


class NodeState(StrEnum):
    ONLINE = "online"
    SLEEPING = "sleeping"  # sleep command sent, or the agent said it is going
    ASLEEP = "asleep"  # went quiet after a sleep: wakeable
    WAKING = "waking"  # wake sent, not back yet
    FAILED = "failed"  # did not come back within resume_timeout: excluded until cleared
    OFFLINE = "offline"  # gone without a sleep: not wakeable


@dataclass(frozen=True, slots=True)
class Meaning:
    placement: Power  # what placement may do with the node
    draws_awake_power: bool  # False: the host is suspended (sleep power, or nothing known)
    resuming: bool  # telemetry from the node in this state means it is back online


MEANING: dict[NodeState, Meaning] = {
    NodeState.ONLINE: Meaning(Power.AWAKE, draws_awake_power=True, resuming=False),
    NodeState.SLEEPING: Meaning(Power.UNAVAILABLE, draws_awake_power=True, resuming=False),
    NodeState.ASLEEP: Meaning(Power.ASLEEP, draws_awake_power=False, resuming=True),
    NodeState.WAKING: Meaning(Power.WAKING, draws_awake_power=True, resuming=True),
    NodeState.FAILED: Meaning(Power.UNAVAILABLE, draws_awake_power=False, resuming=False),
    NodeState.OFFLINE: Meaning(Power.UNAVAILABLE, draws_awake_power=False, resuming=True),
}


def placement_power(state: NodeState) -> Power:
    return MEANING[state].placement
