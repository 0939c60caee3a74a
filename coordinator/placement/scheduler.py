"""One scheduling pass: pending jobs in queue order onto the snapshot, as a plan.

A job goes to the best awake node that can take it now. When no awake node can, it waits for
a node already waking that can take it, or else a sleeping node is asked to wake: one this
pass already wakes if it has room left, else the best (one that meets the deadline first);
either way that capacity is held for the job in this pass, so one job never wakes a second
node while its first is on the way, and jobs that arrive together (held jobs released at
the cheap hour) wake as few nodes as hold them, not one each. Capacity
taken in the pass is subtracted at once, so nothing is ever over-committed, and given back
when the pass ends: the caller turns the plan into events on the kept `ClusterState`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from coordinator.placement.deadline import finish_estimate, meets_deadline
from coordinator.placement.model import ClusterSnapshot, Job, NodeSnapshot, Power, Request
from coordinator.placement.queue import queue_order
from coordinator.placement.select import NodeIndex, covers
from coordinator.placement.state import ClusterState


@dataclass(frozen=True, slots=True)
class Assignment:
    job_id: str
    node: str
    gpus: tuple[int, ...]
    expected_finish: float
    at_risk: bool  # the estimate misses the deadline


@dataclass(frozen=True, slots=True)
class Wake:
    node: str
    job_id: str
    meets_deadline: bool


@dataclass(frozen=True, slots=True)
class Waiting:
    job_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    assignments: tuple[Assignment, ...] = ()
    wakes: tuple[Wake, ...] = ()
    waiting: tuple[Waiting, ...] = ()


def schedule(jobs: list[Job], cluster: ClusterSnapshot | ClusterState, now: float) -> Plan:
    """Plan a pass over a kept `ClusterState` (left as it was found: the caller applies the
    plan as events), or over a snapshot (a state built for this pass alone)."""
    state = cluster if isinstance(cluster, ClusterState) else ClusterState.of(cluster)
    with state.trial():
        return _plan(jobs, state, now)


NO_ROOM = "no node that is awake or can wake has room now"


def _plan(jobs: list[Job], state: ClusterState, now: float) -> Plan:
    assignments: list[Assignment] = []
    wakes: list[Wake] = []
    waiting: list[Waiting] = []
    no_room: list[Request] = []  # found no node at all in this pass: free only shrinks in it
    woken: dict[str, NodeSnapshot] = {}  # asleep nodes this pass wakes, in the order chosen
    awake = state.index(Power.AWAKE)
    for job in queue_order(jobs):
        if no_room and any(covers(job.request, smaller) for smaller in no_room):
            waiting.append(Waiting(job.id, NO_ROOM))
            continue
        node = awake.first(job.request)
        if node is not None:
            gpus = state.hold(Power.AWAKE, node, job.request)
            finish = finish_estimate(job, node, now)
            at_risk = not meets_deadline(job, node, now)
            assignments.append(Assignment(job.id, node.name, gpus, finish, at_risk))
            continue
        coming = state.index(Power.WAKING).first(job.request)
        if coming is not None:
            state.hold(Power.WAKING, coming, job.request)
            waiting.append(Waiting(job.id, f"waiting for {coming.name} to wake"))
            continue
        sleepers = state.index(Power.ASLEEP)
        sleeper = _to_wake(job, sleepers, woken, now)
        if sleeper is not None:
            if sleeper.name not in woken:
                woken[sleeper.name] = sleeper
            state.hold(Power.ASLEEP, sleeper, job.request)
            wakes.append(Wake(sleeper.name, job.id, meets_deadline(job, sleeper, now)))
            waiting.append(Waiting(job.id, f"waiting for {sleeper.name} to wake"))
        else:
            waiting.append(Waiting(job.id, NO_ROOM))
            no_room.append(job.request)
    return Plan(tuple(assignments), tuple(wakes), tuple(waiting))


def _to_wake(
    job: Job, sleepers: NodeIndex, woken: dict[str, NodeSnapshot], now: float
) -> NodeSnapshot | None:
    """The asleep node to wake for `job`: one this pass already wakes, if it still has room
    (least connections would put each job of a released wave on a node of its own, every
    node then awake for its one job's whole run: on cluster02 that was +3 % kWh), else the
    best; either way one that meets the deadline first."""
    in_time = partial(_in_time, job, now)
    filling = [n for n in woken.values() if sleepers.takes(n.name, job.request)]
    return (
        next((n for n in filling if in_time(n)), None)
        or sleepers.first(job.request, in_time)
        or next(iter(filling), None)
        or sleepers.first(job.request)
    )


def _in_time(job: Job, now: float, node: NodeSnapshot) -> bool:
    """`meets_deadline` with the job and the time bound, for a node filter."""
    return meets_deadline(job, node, now)
