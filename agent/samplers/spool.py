"""Spool: samples held in memory because the spool file would not take writes (disk full,
read-only). Non-zero means a restart now would lose them: the operator should look."""

from __future__ import annotations

from collections.abc import Callable

from agent.samplers.base import Availability, Reading


class SpoolSampler:
    name = "spool_memory"  # `check` has a "spool" row of its own (the file and its disk)

    def __init__(self, held: Callable[[], int]) -> None:
        self._held = held

    def sample(self) -> Reading:
        return Reading(metrics={"spool_memory_samples": self._held()})

    def check(self) -> Availability:
        held = self._held()
        return Availability(self.name, held == 0, f"{held} samples held in memory")
