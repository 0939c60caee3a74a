"""What `dormouse slurm suspend|resume|resume-fail` do: expand Slurm's hostlist, map Slurm's
names to dormouse's, and record a power request per node for the leader to carry out (its
sleeps and wakes go through the agents and wakers as an operator's do, with the program as
the reason in the power-event log). Recording is one short transaction: Slurm runs these
programs as SlurmUser, with no time limit, and they must not hold it up.

And what `dormouse slurm advise` reads and replays: the fleet and its measured wakes from the
store, the site's history through the simulator (`coordinator.slurm.advice` plans the runs
and reads their outcome)."""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace

import sqlalchemy as sa

from coordinator.power.tariff import Rate
from coordinator.settings import Slurm
from coordinator.sim.engine import JobRun, Outcome, Simulation
from coordinator.sim.fleet import NodeType, default_type
from coordinator.sim.metrics import Summary, summarise
from coordinator.sim.trace import TraceJob
from coordinator.slurm import hostlist
from coordinator.slurm.advice import Run
from coordinator.store import nodes as node_rows
from coordinator.store import power as power_rows

WAKE_SAMPLES = 100_000  # the newest measured wakes ResumeTimeout is sized from
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


def wake_samples(engine: sa.Engine) -> list[float]:
    """The fleet's measured wakes (s): sleep to back online, as the power loop learns them."""
    with engine.connect() as conn:
        found = power_rows.events(conn, kinds=power_rows.WAKE_TIMES, limit=WAKE_SAMPLES)
    return [e.value for e in found if e.value is not None]


def fleet(engine: sa.Engine, resume_s: float) -> list[NodeType]:
    """The known nodes as simulator node types, one per GPU count (the default power model
    per GPU, `resume_s` to resume): empty when no agent has said hello."""
    with engine.connect() as conn:
        counts = Counter(len(v.hello.gpus) for v in node_rows.load_nodes(conn) if v.hello)
    return [
        replace(default_type(count, gpus), name=f"{gpus}gpu", resume_latency_s=resume_s)
        for gpus, count in sorted(counts.items())
    ]


def replay(
    jobs: list[TraceJob],
    kinds: list[NodeType],
    planned: list[Run],
    tariff: Rate,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Summary]:
    """Every run over the same trace and fleet, energy to a common end (the latest run's).
    The runs are independent: one process each, as many at once as there are cores."""
    workers = min(len(planned), os.cpu_count() or 1)
    context = multiprocessing.get_context("fork")  # the trace is inherited, not pickled
    given = (jobs, kinds, tariff)
    outcomes = {}
    with ProcessPoolExecutor(workers, context, initializer=_given, initargs=given) as pool:
        futures = {pool.submit(_run, run): run.name for run in planned}
        for done in as_completed(futures):
            outcome, results = done.result()
            outcome.jobs = [JobRun(job, *result) for job, result in zip(jobs, results, strict=True)]
            outcomes[futures[done]] = outcome
            if progress is not None:
                progress(len(jobs))
    end = max(o.end for o in outcomes.values())
    return {run.name: summarise(outcomes[run.name], end) for run in planned}


Given = tuple[list[TraceJob], list[NodeType], Rate]
_GIVEN: list[Given] = []  # a worker's trace, fleet and tariff


def _given(jobs: list[TraceJob], kinds: list[NodeType], tariff: Rate) -> None:
    _GIVEN[:] = [(jobs, kinds, tariff)]


def _run(run: Run) -> tuple[Outcome, list[tuple[int, int, int, float | None, float | None]]]:
    """The outcome without its trace (the parent has it): each job's results in trace
    order, which pickle in a fraction of the time the job records would."""
    [(jobs, kinds, tariff)] = _GIVEN
    outcome = Simulation(jobs, kinds, run.sim, run.knobs, tariff=tariff).run()
    for node in outcome.nodes:
        node.on_change = None  # the simulation's own hook: not for the parent
    results = [(r.parts, r.started, r.finished, r.start_s, r.end_s) for r in outcome.jobs]
    outcome.jobs = []
    return outcome, results
