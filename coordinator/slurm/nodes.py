"""Slurm's view of its nodes, read from `scontrol --oneliner show node` (pure: text in,
records out; `coordinator.slurm.scontrol` runs the command).

Slurm 22.05's `scontrol` has no `--json`; its one-line form is `Key=Value` pairs separated
by spaces, with `Reason=` last on the line when set (and the only value with spaces, ending
`[user@time]`). States are `BASE+FLAG+FLAG`: `IDLE+POWERED_DOWN`,
`DOWN+POWERED_DOWN+NOT_RESPONDING`, `MIXED+NOT_RESPONDING+POWERING_UP`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REASON_TIME = re.compile(r"\s*\[[^\]]*@[^\]]*\]$")  # Slurm's "[root@2026-12-07T02:02:53]"
# Reasons Slurm itself writes when a node does not come back, and ours: a DOWN node with any
# other reason was put there by a person, and stays as they left it.
POWER_REASONS = ("ResumeTimeout reached", "Not responding", "dormouse:")
BUSY = frozenset({"ALLOCATED", "MIXED", "COMPLETING"})
POWER_FLAGS = frozenset({"POWERED_DOWN", "POWERING_DOWN", "POWERING_UP", "POWER_DOWN"})
HELD = frozenset({"DRAIN", "DRAINING", "DRAINED", "RESERVED", "MAINTENANCE", "REBOOT_REQUESTED"})


@dataclass(frozen=True, slots=True)
class SlurmNode:
    name: str
    states: frozenset[str]  # the base state and its flags, upper case
    reason: str = ""  # without Slurm's "[user@time]"

    @property
    def down(self) -> bool:
        return "DOWN" in self.states

    @property
    def stuck(self) -> bool:
        """DOWN after a resume that did not come back in time (or after we said why): the
        node dormouse returns to service once its agent is back. A DOWN with a person's
        reason is not ours to undo."""
        return self.down and (not self.reason or self.reason.startswith(POWER_REASONS))

    @property
    def idle(self) -> bool:
        """Idle and powered up, not drained or reserved: Slurm would power it down now."""
        return (
            "IDLE" in self.states
            and not self.states & (BUSY | POWER_FLAGS | HELD)
            and "NOT_RESPONDING" not in self.states
        )

    @property
    def powered_down(self) -> bool:
        return "POWERED_DOWN" in self.states and not self.down


def parse_show_node(text: str) -> list[SlurmNode]:
    """Every node of `scontrol --oneliner show node`; lines without `NodeName=` are skipped."""
    return [node for line in text.splitlines() if (node := parse_line(line)) is not None]


def parse_line(line: str) -> SlurmNode | None:
    head, _, reason = line.partition(" Reason=")
    fields = dict(
        part.split("=", 1) for part in head.split() if "=" in part and not part.startswith("=")
    )
    name = fields.get("NodeName")
    if not name:
        return None
    states = frozenset(s for s in fields.get("State", "UNKNOWN").upper().split("+") if s)
    return SlurmNode(name, states, REASON_TIME.sub("", reason.strip()))
