"""CPU of a simulated node: the load of this agent's own jobs, not the host's.

For a fleet of several agents on one machine (`dormouse demo`, tests): every agent there
would otherwise report the same host CPU, so a busy host would keep every simulated node
"busy" and none would ever be idle enough to sleep. Used instead of `cpu` when the agent's
`simulated_load` setting is on; never on a real server.
"""

from __future__ import annotations

from collections.abc import Callable

from agent.samplers.base import Availability, Reading

BUSY_PCT = 100.0  # a node running any job
IDLE_PCT = 1.0  # a node running none: under every idle threshold


class SimulatedCpuSampler:
    name = "cpu"

    def __init__(self, jobs_running: Callable[[], int]) -> None:
        self._running = jobs_running

    def sample(self) -> Reading:
        util = BUSY_PCT if self._running() else IDLE_PCT
        return Reading(metrics={"cpu_util_pct": util, "cpu_core_util_pct": None})

    def check(self) -> Availability:
        return Availability(self.name, True, "simulated: the load of this agent's jobs")
