"""Slurm mode's part of the leader's power pass (`[slurm] enabled`): read Slurm's nodes
every `watch_every`, mend the ones a slow or failed resume left DOWN
(`coordinator.slurm.recovery`), and route the power policy's own sleeps and wakes through
Slurm with `decides = "dormouse"` (`coordinator.slurm.asks`) or drop them with
`decides = "slurm"`. Every step is a power event with its reason; scontrol's refusals are
logged once per distinct message, so a slurmctld that is down is one line, not one a pass.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

from coordinator.core.registry import Registry
from coordinator.power.policy import Action
from coordinator.settings import Slurm
from coordinator.slurm import asks
from coordinator.slurm.nodes import SlurmNode
from coordinator.slurm.recovery import (
    Retry,
    Step,
    recover,
    still_stuck,
    stuck_nodes,
    woken_lately,
)
from coordinator.slurm.scontrol import Scontrol, ScontrolError

log = logging.getLogger(__name__)
REASON_MAX = 200  # Slurm keeps a node's reason as given; keep ours to a line


class Power(Protocol):
    """What the bridge needs of the power loop: its event log, its wakes, and when each
    node came back from its last wake."""

    @property
    def resumed_at(self) -> Mapping[str, float]: ...

    def note(self, now: float, node: str, kind: str, reason: str) -> None: ...

    async def wake(
        self, node: str, reason: str, now: float, attempt: int = 0
    ) -> tuple[bool, str]: ...


class Control(Protocol):
    """Slurm as the bridge uses it (`coordinator.slurm.scontrol.Scontrol`)."""

    async def nodes(self) -> list[SlurmNode]: ...

    async def update(self, node: str, state: str, reason: str | None = None) -> None: ...


class SlurmBridge:
    def __init__(self, config: Slurm, registry: Registry, scontrol: Control | None = None) -> None:
        self._config, self._registry = config, registry
        self._scontrol: Control = scontrol or Scontrol(config.scontrol)
        self._slurm_names = {node: slurm for slurm, node in config.node_map.items()}
        self._nodes: dict[str, SlurmNode] = {}  # by Slurm's name, as last read
        self._read_at: float | None = None
        self._retries: dict[str, Retry] = {}
        self._stuck: set[str] = set()  # Slurm's names of the DOWN nodes that are ours
        self._asked: dict[str, float] = {}  # node -> when Slurm was last asked to power it
        self._last_error: str | None = None

    @property
    def nodes(self) -> dict[str, SlurmNode]:
        return self._nodes

    async def tick(self, now: float, power: Power) -> None:
        """Read Slurm's nodes when due, and mend the stuck ones."""
        if self._read_at is not None and now - self._read_at < self._config.watch_every:
            return
        self._read_at = now
        try:
            self._nodes = {n.name: n for n in await self._scontrol.nodes()}
        except ScontrolError as exc:
            self._error(str(exc))
            return
        self._last_error = None
        woken = woken_lately(self._nodes, power.resumed_at, now, self._config.dormouse_name)
        self._stuck = stuck_nodes(list(self._nodes.values()), self._stuck | woken)
        ours = {self._config.dormouse_name(name) for name in self._stuck}
        self._retries = still_stuck(self._retries, ours, now)
        states = {name: view.state for name, view in self._registry.nodes.items()}
        steps = recover(
            list(self._nodes.values()),
            self._stuck,
            states,
            self._retries,
            now,
            rewake_after_s=self._config.rewake_after,
            dormouse_name=self._config.dormouse_name,
        )
        for step in steps:
            await (self._resume if step.kind == "resume" else self._rewake)(step, now, power)

    async def carry(self, action: Action, now: float, power: Power) -> None:
        """The policy's sleep or wake of a Slurm node: asked of Slurm (`decides =
        "dormouse"`), or left to Slurm's own timer and ResumeProgram (`decides = "slurm"`)."""
        if self._config.decides == "slurm":
            return
        slurm_name = self._slurm_names.get(action.node, action.node)
        state = asks.slurm_state_for(action.kind, self._nodes.get(slurm_name))
        if state is None or not asks.due(self._asked, action.node, now):
            return
        self._asked[action.node] = now
        try:
            await self._scontrol.update(slurm_name, state)
        except ScontrolError as exc:
            power.note(now, action.node, "slurm_error", f"State={state}: {exc}")
            self._error(str(exc))
            return
        power.note(now, action.node, "slurm_ask", f"{action.reason}: asked Slurm for {state}")
        log.info("node %s: asked Slurm for %s (%s)", action.node, state, action.reason)

    async def _resume(self, step: Step, now: float, power: Power) -> None:
        try:
            await self._scontrol.update(step.slurm, "RESUME")
        except ScontrolError as exc:
            power.note(now, step.node, "slurm_error", f"State=RESUME: {exc}")
            self._error(str(exc))
            return
        self._retries[step.node] = Retry(step.attempt + 1, now)
        power.note(now, step.node, "slurm_resume", f"returned to service in Slurm: {step.why}")
        log.warning("node %s: returned to service in Slurm: %s", step.node, step.why)

    async def _rewake(self, step: Step, now: float, power: Power) -> None:
        """Wake again through the next method, and say so in Slurm's reason for the node
        (`State=DOWN` keeps it down: only the reason changes)."""
        self._retries[step.node] = Retry(step.attempt + 1, now)
        sent, how = await power.wake(step.node, f"slurm recovery: {step.why}", now, step.attempt)
        said = f"sent ({how}), waiting for its agent" if sent else f"failed: {how}"
        reason = f"dormouse: wake try {step.attempt + 1} {said}"[:REASON_MAX]
        try:
            await self._scontrol.update(step.slurm, "DOWN", reason)
        except ScontrolError as exc:
            self._error(str(exc))

    def _error(self, message: str) -> None:
        if message != self._last_error:
            log.error("slurm: %s", message)
        self._last_error = message
