"""Jobs: how many jobs this agent is running, asked of the job runner."""

from __future__ import annotations

from collections.abc import Callable

from agent.samplers.base import Availability, Reading


class JobsSampler:
    name = "jobs"

    def __init__(self, running: Callable[[], int]) -> None:
        self._running = running

    def sample(self) -> Reading:
        return Reading(metrics={"jobs_running": self._running()})

    def check(self) -> Availability:
        return Availability(self.name, True, f"{self._running()} running")
