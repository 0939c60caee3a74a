"""What `dormouse slurm suspend|resume|resume-fail` do: expand Slurm's hostlist, map Slurm's
names to dormouse's, and record a power request per node for the leader to carry out (its
sleeps and wakes go through the agents and wakers as an operator's do, with the program as
the reason in the power-event log). Recording is one short transaction: Slurm runs these
programs as SlurmUser, with no time limit, and they must not hold it up."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from coordinator.settings import Slurm
from coordinator.slurm import hostlist
from coordinator.store import nodes as node_rows
from coordinator.store import power as power_rows

# program -> (the power request's action, its source: the reason the power-event log shows)
PROGRAMS = {
    "suspend": ("sleep", "slurm SuspendProgram"),
    "resume": ("wake", "slurm ResumeProgram"),
    "resume-fail": ("wake", "slurm ResumeFailProgram"),
}


@dataclass(frozen=True, slots=True)
class Recorded:
    slurm: str  # Slurm's name for the node
    node: str  # dormouse's
    request_id: int | None  # None: dormouse does not know the node


def record(
    engine: sa.Engine, config: Slurm, program: str, expression: str, now: float
) -> list[Recorded]:
    """A request per host of `expression`; hosts dormouse does not know are listed, not
    recorded. Raises HostlistError for an expression Slurm would not write."""
    action, source = PROGRAMS[program]
    hosts = hostlist.expand(expression)
    found = []
    with engine.begin() as conn:
        known = set(node_rows.known_nodes(conn))
        for host in hosts:
            node = config.dormouse_name(host)
            request_id = (
                power_rows.request(conn, node, action, force=True, now=now, source=source)
                if node in known
                else None
            )
            found.append(Recorded(host, node, request_id))
    return found
