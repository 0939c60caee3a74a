"""What `dormouse submit`, `cancel` and `pick` do against the store; the CLI only parses.

Submission writes the job row (state `pending`) in one transaction before answering, so a
submitted job is durable: the coordinator's next placement pass picks it up, after a
coordinator restart too.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from coordinator.core import jobstate
from coordinator.core.jobstate import JobRecord, JobState
from coordinator.core.snapshot import cluster_snapshot
from coordinator.placement.balance import BALANCE_FACTOR, Strategy
from coordinator.placement.estimate import Estimate, estimate
from coordinator.placement.filters import never_fits, rejection, whole
from coordinator.placement.model import ClusterSnapshot, Request
from coordinator.placement.pick import Picked, Picker
from coordinator.services import tariffs
from coordinator.services.nodes import own_key_id
from coordinator.settings import CoordinatorConfig
from coordinator.store import jobs as job_rows
from coordinator.store import nodes as node_rows
from coordinator.store import picks as pick_rows
from coordinator.store import stats as stat_rows
from shared.errors import Conflict, DormouseError, NotFound
from shared.units import J_PER_KWH, format_bytes, format_labels

if TYPE_CHECKING:  # numpy behind it: `dormouse status` and `jobs` need neither
    from coordinator.power.report import CostModel

HELD_NO_KEY = "placement_held_no_key"  # the coordinator's figure: 1 while it has no key
NO_KEY_ADVICE = "`dormouse key generate`, copy it to every agent, restart the coordinator"


class JobError(DormouseError):
    """A job request or operation that cannot be done; the message says why."""


class UnknownJob(JobError, NotFound):
    """No job has that id."""


class NotHeld(JobError, Conflict):
    """A release asked of a job that is no longer pending."""


class JobConflict(JobError, Conflict):
    """The job's state forbids it now (it ended, or changed meanwhile)."""


@dataclass(frozen=True, slots=True)
class Submitted:
    job: JobRecord
    estimate: Estimate
    nodes_known: int


def new_job_id() -> str:
    return uuid.uuid4().hex[:12]


def snapshot(
    conn: sa.Connection, own_key: str | None = None
) -> tuple[ClusterSnapshot, list[JobRecord]]:
    active = job_rows.active(conn)
    return cluster_snapshot(node_rows.load_nodes(conn), active, own_key=own_key), active


def placement_held(engine: sa.Engine, key_file: Path) -> str | None:
    """Why the coordinator places no jobs, or None. Its own figure decides when it has run
    (a user's CLI may not be able to read the key it uses); before it ever ran, this
    config's key file stands in."""
    with engine.connect() as conn:
        figure = stat_rows.read_stats(conn).get(HELD_NO_KEY)
    if figure is not None:
        held = figure[0] >= 1
        return f"the coordinator has no command key ({NO_KEY_ADVICE})" if held else None
    if not key_file.exists():
        return f"no command key at {key_file}: no job will be placed ({NO_KEY_ADVICE})"
    return None


def submit(engine: sa.Engine, job: JobRecord, now: float) -> Submitted:
    with engine.begin() as conn:
        cluster, active = snapshot(conn)
        refusal = never_satisfiable(job.as_job().request, cluster)
        if refusal:
            raise JobError(refusal)
        job_rows.insert(conn, job, now)
    pending = [j.as_job() for j in active if j.state is JobState.PENDING]
    return Submitted(job, estimate(job.as_job(), pending, cluster, now), len(cluster.nodes))


def never_satisfiable(request: Request, cluster: ClusterSnapshot) -> str | None:
    """Why no known node could ever take the request (None: some could, or none is known)."""
    if not cluster.nodes:
        return None
    reasons = [never_fits(request, node) for node in cluster.nodes]
    if not all(reasons):
        return None
    counts = Counter(reasons)
    why = ", ".join(f"{reason} on {n} node{'s' * (n > 1)}" for reason, n in counts.most_common())
    largest = max(cluster.nodes, key=lambda n: (len(n.gpus), n.cpus, n.mem_bytes))
    return (
        f"no node in the fleet could ever run it ({why}): it asks {request.cpus} CPUs, "
        f"{format_bytes(request.mem_bytes)}, {request.gpus} GPUs, labels "
        f"{format_labels(request.labels) or 'none'}; the largest node, {largest.name}, has "
        f"{largest.cpus} CPUs, {format_bytes(largest.mem_bytes)}, {len(largest.gpus)} GPUs"
    )


def cancel(engine: sa.Engine, job_id: str, now: float) -> JobRecord:
    with engine.begin() as conn:
        job = job_rows.get(conn, job_id)
        if job is None:
            raise UnknownJob(f"no job {job_id!r}")
        change = jobstate.cancel(job, now)
        if change is None:
            if job.cancel_requested:
                return job
            raise JobConflict(f"job {job_id} has already ended ({job.state.value})")
        if not job_rows.apply(conn, job, change, now):
            raise JobConflict(f"job {job_id} changed meanwhile; try again")
    return change.job


def pick(
    engine: sa.Engine,
    request: Request,
    *,
    strategy: Strategy = Strategy.LEAST_CONNECTIONS,
    key: str | None = None,
    balance_factor: float = BALANCE_FACTOR,
    now: float,
) -> Picked | str:
    """Where a request should go now. Round-robin reads and moves the stored cursor in the
    same transaction; an affinity pick is noted, so its node does not count as idle."""
    with engine.begin() as conn:
        cluster, _ = snapshot(conn)
        cursor = pick_rows.cursor(conn, strategy) if strategy is Strategy.ROUND_ROBIN else None
        picker = Picker(
            cluster,
            balance_factor=balance_factor,
            rng=random.Random(),  # noqa: S311 - spreading load, not secrets
            cursor=cursor,
        )
        picked = picker.pick(request, strategy, key)
        if isinstance(picked, Picked) and strategy is Strategy.ROUND_ROBIN:
            pick_rows.set_cursor(conn, strategy, picked.node, now)
        elif isinstance(picked, Picked) and strategy is Strategy.AFFINITY:
            pick_rows.note_affinity(conn, picked.node, now)
    return picked


def describe(engine: sa.Engine, job_id: str) -> tuple[JobRecord, list[dict[str, object]]]:
    with engine.connect() as conn:
        job = job_rows.get(conn, job_id)
        if job is None:
            raise UnknownJob(f"no job {job_id!r}")
        return job, job_rows.events(conn, job_id)


def queue(engine: sa.Engine, settings: CoordinatorConfig, job: JobRecord, now: float) -> Answer:
    """Submit a job and say when it should start and finish, and why it may wait: what
    `dormouse submit` and `POST /api/v1/jobs` answer. A bad tariff file is refused before
    anything is queued. In Slurm mode, Slurm places the jobs: none is queued here."""
    if settings.slurm.enabled:
        raise JobError(
            "this fleet is in Slurm mode ([slurm] enabled): submit the job to Slurm (sbatch); "
            "dormouse places none"
        )
    hold = tariffs.predicted_hold(settings.cost, job.as_job(), now, settings.power.resume_latency)
    submitted = submit(engine, job, now)
    est = submitted.estimate
    start, finish = est.start, est.finish
    if hold is not None and start is not None and finish is not None:
        later = max(0.0, hold.until - start)
        start, finish = start + later, finish + later
    fields = {
        "id": job.id,
        "name": job.name,
        "expected_start": start,
        "expected_finish": finish,
        "deadline": job.deadline,
        "at_risk": est.at_risk,
        "basis": est.basis,
        "node": est.node,
        "held": placement_held(engine, settings.command_key_file),
        "deferred_until": None if hold is None else hold.until,
        "deferred_because": None if hold is None else hold.reason,
    }
    return Answer(fields, submitted.nodes_known)


@dataclass(frozen=True, slots=True)
class Answer:
    fields: dict[str, Any]  # the JSON answer; keys are an interface
    nodes_known: int


def summary(job: JobRecord) -> dict[str, Any]:
    """One job as `dormouse jobs --json` and `GET /api/v1/jobs` list it (times: epoch s)."""
    return {
        "id": job.id,
        "name": job.name,
        "account": job.account,
        "user": job.user,
        "state": job.state.value,
        "node": job.node,
        "gpus": list(job.gpu_indices),
        "submitted": job.submitted_at,
        "started": job.started_at,
        "finished": job.finished_at,
        "deadline": job.deadline,
        "deadline_met": job.deadline_met,
        "runtime_s": job.runtime_s,
        "priority": job.priority,
        "gpu_util_pct": job.gpu_util_pct,
        "wasteful_since": job.wasteful_at,
    }


def detail(
    engine: sa.Engine, job_id: str, key_file: Path, model: CostModel | None = None
) -> dict[str, Any]:
    """One job in full with its event log, why it waits when pending, and its energy: the
    joules its agent charged it (its GPUs and CPU share), in kWh and priced at `model`'s
    tariff over its run."""
    record, events = describe(engine, job_id)
    waiting = waiting_for(engine, record, key_file) if record.state is JobState.PENDING else None
    fields = asdict(record) | {"state": record.state.value, "waiting": waiting}
    fields |= {k: list(v) for k, v in fields.items() if isinstance(v, tuple | frozenset)}
    return {"job": fields, "events": events, **energy_of(record, model)}


def waiting_for(engine: sa.Engine, record: JobRecord, key_file: Path) -> str | None:
    """Why a pending job waits: the coordinator places nothing, or no node could take it
    even empty (each node's first refusal, counted: "2 command key, 1 labels"); None when
    some node could (it waits for room, a wake or a cheaper hour)."""
    held = placement_held(engine, key_file)
    if held is not None:
        return held
    with engine.connect() as conn:
        cluster, _ = snapshot(conn, own_key_id(key_file))
    request = record.as_job().request
    reasons = Counter(rejection(request, node, whole(node)) for node in cluster.nodes)
    if not reasons or None in reasons:
        return None
    counted = ", ".join(f"{n} {reason}" for reason, n in reasons.most_common())
    return f"no node can take it now ({counted})"


def logs(engine: sa.Engine, job_id: str) -> dict[str, Any]:
    """A job's output as the coordinator holds it: the end of its stdout and stderr, kept
    from its end event (`stdout`/`stderr` None until it ended), where it ran, and that
    node's state now (asleep: the whole files wait on its disk)."""
    with engine.connect() as conn:
        job = job_rows.get(conn, job_id)
        if job is None:
            raise UnknownJob(f"no job {job_id!r}")
        kept = job_rows.output(conn, job_id)
        views = node_rows.load_nodes(conn, job.node) if job.node else []
    node = views[0] if views else None
    return {
        "id": job.id,
        "state": job.state.value,
        "node": job.node,
        "node_state": node.state.value if node is not None else None,
        "stdout": kept[0] if kept else None,
        "stderr": kept[1] if kept else None,
    }


def release(engine: sa.Engine, job_id: str, now: float) -> JobRecord:
    """`dormouse jobs release ID`: a job held for a cheaper (or cleaner) window starts at
    the coordinator's next pass. Only a pending job can be released."""
    with engine.begin() as conn:
        job = job_rows.get(conn, job_id)
        if job is None:
            raise UnknownJob(f"no job {job_id!r}")
        if job.state is not JobState.PENDING:
            raise NotHeld(f"job {job_id} is {job.state.value}: only a pending job is held")
        job_rows.log_event(
            conn, job_id, ts=now, kind=job_rows.RELEASE, node=None, detail="by an operator"
        )
    return job


def energy_of(record: JobRecord, model: CostModel | None) -> dict[str, float | None]:
    joules = record.energy_j
    kwh = None if joules is None else joules / J_PER_KWH
    ran = (record.started_at, record.finished_at)
    cost = None
    if kwh is not None and model is not None and ran[0] is not None and ran[1] is not None:
        cost = kwh * model.price(ran[0], max(ran[1], ran[0]))
    return {"energy_j": joules, "kwh": kwh, "cost": cost}


def listing(
    engine: sa.Engine,
    states: list[str],
    limit: int,
    *,
    account: str | None = None,
    wasteful: bool = False,
) -> list[JobRecord]:
    unknown = set(states) - {s.value for s in JobState}
    if unknown:
        known = ", ".join(s.value for s in JobState)
        raise JobError(f"unknown state {sorted(unknown)[0]!r}; states: {known}")
    with engine.connect() as conn:
        return job_rows.listing(conn, states, limit, account=account, wasteful=wasteful)


def held_notes(engine: sa.Engine, found: list[JobRecord]) -> dict[str, str]:
    """The pending jobs of `found` held for a better window, with their hold as `dormouse
    jobs` shows it (`held until 23:00 UTC (cheaper by 31 %)`)."""
    pending = [j.id for j in found if j.state is JobState.PENDING]
    with engine.connect() as conn:
        return job_rows.hold_notes(conn, pending)


def unplace_node(engine: sa.Engine, node: str, reason: str, now: float) -> int:
    """Jobs placed on a node that will not come (it failed to resume) go back to the queue.
    Returns how many; a job that changed meanwhile is left to the next pass."""
    moved = 0
    with engine.begin() as conn:
        for job in job_rows.active(conn):
            if job.node == node and job.state is JobState.PLACED:
                moved += job_rows.apply(conn, job, jobstate.unplace(job, reason), now)
    return moved
