"""`dormouse jobs [submit | show | cancel | pick]` (and the shortcuts `submit`, `job`, `cancel`,
`pick`): parse, call the jobs service, print."""

from __future__ import annotations

import getpass
import json
import time
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

import typer

from coordinator.cli.common import PROG, DbOption, JsonOption, fail, load, positive_duration, store
from coordinator.cli.job_logs import logs
from coordinator.core.jobstate import JobRecord, JobState
from coordinator.placement.balance import Strategy
from coordinator.placement.model import Request
from coordinator.placement.pick import Picked
from coordinator.services import jobs as jobs_service
from coordinator.services import report as report_service
from coordinator.settings import parse_account
from shared.config import parse_labels
from shared.edge.config_cli import ConfigOption
from shared.edge.console import print_json, print_rows, reported_errors
from shared.messages import MAX_ARGV
from shared.units import iso, parse_duration, parse_size

JOB_COLUMNS = [
    "id",
    "name",
    "account",
    "state",
    "node",
    "gpus",
    "submitted",
    "started",
    "finished",
    "deadline",
    "deadline_met",
]
LabelOption = Annotated[
    list[str] | None,
    typer.Option("--label", metavar="KEY=VALUE", help="k=v, must match the node's (repeatable)"),
]
NO_PICK = 3
PANEL = "Jobs"
app = typer.Typer(
    help="Jobs, newest first; subcommands queue, show and cancel them.",
    invoke_without_command=True,
)


def parse_deadline(text: str | None, now: float) -> float | None:
    """ "2h" (from now) or an ISO-8601 time."""
    if text is None:
        return None
    try:
        return now + parse_duration(text)
    except ValueError:
        pass
    try:
        deadline = datetime.fromisoformat(text).timestamp()
    except ValueError:
        fail(f"--deadline {text!r}: expected a duration from now (2h) or ISO-8601")
    if deadline <= now:
        fail(f"--deadline {text} is in the past")
    return deadline


def parse_request(cpus: int, mem: str, gpus: int, labels: list[str] | None) -> Request:
    if cpus < 0 or gpus < 0:
        fail("--cpus and --gpus must be 0 or more")
    try:
        mem_bytes = parse_size(mem)
    except ValueError as exc:
        fail(f"--mem: {exc}")
    try:
        wanted = parse_labels(",".join(labels or []))
    except (ValueError, TypeError) as exc:
        fail(f"--label: {exc}")
    return Request(cpus=cpus, mem_bytes=mem_bytes, gpus=gpus, labels=wanted)


def parse_strategy(text: str, key: str | None) -> Strategy:
    try:
        chosen = Strategy(text)
    except ValueError:
        fail(f"--strategy {text!r}: expected one of {', '.join(s.value for s in Strategy)}")
    if chosen is Strategy.AFFINITY and not key:
        fail("--strategy affinity needs --key (the user, session or prompt prefix to stick to)")
    return chosen


def submit(
    command: Annotated[
        list[str],
        typer.Argument(metavar="COMMAND...", help="the program and its arguments, after --"),
    ],
    cpus: Annotated[int, typer.Option(help="CPUs it needs")] = 1,
    mem: Annotated[str, typer.Option(metavar="SIZE", help="memory it needs, e.g. 4G")] = "0",
    gpus: Annotated[int, typer.Option(help="GPUs it needs")] = 0,
    runtime: Annotated[
        str, typer.Option(metavar="DURATION", help="runtime estimate, e.g. 30m")
    ] = "1h",
    deadline: Annotated[
        str | None, typer.Option(metavar="WHEN", help="2h (from now) or ISO-8601")
    ] = None,
    priority: Annotated[int, typer.Option(help="higher goes first, after deadlines")] = 0,
    name: Annotated[str, typer.Option(metavar="NAME", help="a name to find it by")] = "",
    label: LabelOption = None,
    requeue: Annotated[bool, typer.Option(help="place it again if its node is lost")] = False,
    account: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="who pays: a team or project (default: \\[cost] default_account, else your "
            "user name)",
        ),
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Queue a job; prints its id and when it should start and finish."""
    now = time.time()
    request = parse_request(cpus, mem, gpus, label)
    runtime_s = positive_duration(runtime, "--runtime")
    if len(command) > MAX_ARGV or len(name) > 128:
        fail(f"at most {MAX_ARGV} arguments and a name of at most 128 characters")
    settings = load(config)
    user = getpass.getuser()
    try:
        charged_to = parse_account(account or settings.cost.default_account or user)
    except ValueError as exc:
        fail(f"--account: {exc}")
    job = JobRecord(
        id=jobs_service.new_job_id(),
        argv=tuple(command),
        submitted_at=now,
        name=name,
        cpus=request.cpus,
        mem_bytes=request.mem_bytes,
        gpus=request.gpus,
        labels=request.labels,
        runtime_s=runtime_s,
        deadline=parse_deadline(deadline, now),
        priority=priority,
        requeue=requeue,
        account=charged_to,
        user=user[:64],
    )
    engine = store(config, db)
    with reported_errors(PROG):
        submitted = jobs_service.queue(engine, settings, job, now)
    answer = submitted.fields
    held, start, finish = answer["held"], answer["expected_start"], answer["expected_finish"]
    if held is not None:
        typer.echo(f"{PROG}: warning: job {job.id} waits: {held}", err=True)
    if as_json:
        print_json(answer)
        return
    typer.echo(f"submitted job {job.id}")
    typer.echo(f"  expected start:  {_when(start)} ({_basis(answer['basis'], answer['node'])})")
    if answer["deferred_until"] is not None:
        typer.echo(
            f"  held until:      {_when(answer['deferred_until'])}: {answer['deferred_because']}"
        )
    typer.echo(f"  expected finish: {_when(finish)}")
    if job.deadline is not None:
        typer.echo(f"  deadline:        {_when(job.deadline)}{' AT RISK' * answer['at_risk']}")
    if submitted.nodes_known == 0:
        typer.echo("  no nodes known yet: it waits for agents to join")


def _when(ts: float | None) -> str:
    return "unknown" if ts is None else iso(ts)


def _basis(basis: str, node: str | None) -> str:
    """Said as a prediction: the coordinator's next pass sees a newer fleet and may choose
    another node (or wake another one)."""
    return {
        "now": f"predicted: {node} at the next pass",
        "wake": f"predicted: after {node} wakes",
        "queued": f"predicted: when jobs running on {node} end",
        "unknown": "no node can take it now",
    }[basis]


def _row(job: JobRecord, as_json: bool, held: str | None = None) -> dict[str, Any]:
    fields = jobs_service.summary(job) | {"held": held}
    if as_json:
        return fields
    if held is not None:
        fields["state"] = held
    times = ("submitted", "started", "finished", "deadline")
    shown = {k: iso(fields[k]) for k in times if fields[k] is not None}
    return fields | shown | {"gpus": ",".join(map(str, fields["gpus"]))}


@app.callback()
def jobs(
    ctx: typer.Context,
    state: Annotated[
        list[str] | None, typer.Option(metavar="STATE", help="only jobs in this state (repeatable)")
    ] = None,
    limit: Annotated[int, typer.Option(help="newest this many")] = 1000,
    account: Annotated[
        str | None, typer.Option(metavar="NAME", help="only this account's jobs")
    ] = None,
    wasteful: Annotated[
        bool,
        typer.Option(
            "--wasteful",
            help="only jobs flagged for holding GPUs they leave idle (\\[cost] waste_*)",
        ),
    ] = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Jobs, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    engine = store(config, db)
    with reported_errors(PROG):
        found = jobs_service.listing(engine, state or [], limit, account=account, wasteful=wasteful)
        held = jobs_service.held_notes(engine, found)
    rows = [_row(j, as_json, held.get(j.id)) for j in found]
    columns = [*JOB_COLUMNS, "user", "gpu_util_pct", "wasteful_since", "held"]
    print_rows(rows, columns if as_json else JOB_COLUMNS, as_json=as_json)


def job(
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID", help="job id")],
    as_json: JsonOption = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """One job in full, and its event log."""
    engine = store(config, db)
    settings = load(config)
    with reported_errors(PROG):
        model = report_service.cost_model(settings)
        found = jobs_service.detail(engine, job_id, settings.command_key_file, model)
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    details, events = found["job"], found["events"]
    details |= {"kwh": found["kwh"], "cost": found["cost"]}
    details["argv"] = " ".join(details["argv"])
    if details["waiting"] is None:
        del details["waiting"]
    for key in ("submitted_at", "placed_at", "started_at", "finished_at", "deadline"):
        details[key] = _when(details[key]) if details[key] is not None else None
    print_rows(
        [{"field": k, "value": v} for k, v in details.items()], ["field", "value"], as_json=False
    )
    rows = [e | {"ts": iso(e["ts"])} for e in events]
    print_rows(rows, ["ts", "kind", "node", "detail"], as_json=False, title="events")


def cancel(
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID", help="job id")],
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Cancel a job: at once if pending; on a node, SIGTERM then SIGKILL after a grace."""
    engine = store(config, db)
    with reported_errors(PROG):
        record = jobs_service.cancel(engine, job_id, time.time())
    if record.state is JobState.CANCELLED:
        typer.echo(f"job {job_id} cancelled")
    else:
        typer.echo(f"job {job_id}: cancel sent to {record.node}; it ends when the node stops it")


def pick(
    gpus: Annotated[int, typer.Option(help="GPUs the request needs free")] = 0,
    cpus: Annotated[int, typer.Option(help="CPUs the request needs free")] = 0,
    label: LabelOption = None,
    strategy: Annotated[
        str,
        typer.Option(
            "--strategy", metavar="STRATEGY", help=f"one of {', '.join(s.value for s in Strategy)}"
        ),
    ] = Strategy.LEAST_CONNECTIONS.value,
    key: Annotated[
        str | None,
        typer.Option("--key", metavar="KEY", help="affinity: the user, session or prompt prefix"),
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """The node a stateless request should go to now (exit 3: none). Least connections by
    default; round-robin, affinity (--key, bounded load) or p2c (power of two choices)."""
    request = parse_request(cpus, "0", gpus, label)
    chosen = parse_strategy(strategy, key)
    settings = load(config, db=db)
    engine = store(config, db)
    with reported_errors(PROG):
        picked = jobs_service.pick(
            engine,
            request,
            strategy=chosen,
            key=key,
            balance_factor=settings.jobs.balance_factor,
            now=time.time(),
        )
    if not isinstance(picked, Picked):
        fail(picked, NO_PICK)
    if as_json:
        typer.echo(json.dumps(asdict(picked) | {"free_gpus": list(picked.free_gpus)}))
    else:
        typer.echo(picked.node)


def release(
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID", help="job id")],
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Start a job held for a cheaper (or cleaner) window at the next pass."""
    with reported_errors(PROG):
        jobs_service.release(store(config, db), job_id, time.time())
    typer.echo(f"released {job_id}: it is placed at the coordinator's next pass")


for _name, _command in (
    ("submit", submit),
    ("show", job),
    ("cancel", cancel),
    ("pick", pick),
    ("logs", logs),
    ("release", release),
):
    app.command(_name)(_command)


def shortcuts(root: typer.Typer) -> None:
    """The top-level names operators and scripts already use."""
    for name, command in (("submit", submit), ("job", job), ("cancel", cancel), ("pick", pick)):
        root.command(name, rich_help_panel=PANEL)(command)
