"""`dormouse slurm suspend|resume|resume-fail HOSTLIST`: the programs slurm.conf names as
SuspendProgram, ResumeProgram and ResumeFailProgram (docs/slurm.md).

Slurm does not keep their output, so each appends a line to `[slurm] log_file` (and says it
on stderr, for the journal when run by hand): the hosts recorded, the hosts dormouse does
not know. Exit 0 once recorded; 2 with one line for a hostlist Slurm would not write or a
store that cannot be reached (Slurm then marks the nodes as it does for any failed program).
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress
from rich.table import Table

from coordinator.cli.common import PROG, DbOption, fail, load, store
from coordinator.cli.simulate import read_trace
from coordinator.core.tick import quantile
from coordinator.services import slurm as slurm_service
from coordinator.services.tariffs import prices
from coordinator.settings import CoordinatorConfig
from coordinator.sim.fleet import NodeType, default_type, parse_fleet
from coordinator.sim.trace import TraceJob, TraceOptions, parse_trace
from coordinator.slurm import accounting, advice
from shared.config import NO_FILE
from shared.edge.config_cli import ConfigOption
from shared.edge.console import reported_errors, table_console
from shared.errors import ConfigError
from shared.units import iso, parse_duration

app = typer.Typer(
    help="Slurm's power programs (suspend, resume, resume-fail).", no_args_is_help=True
)
HostlistArgument = Annotated[
    str, typer.Argument(metavar="HOSTLIST", help="Slurm's hostlist, e.g. gpu[01-04,07]")
]


@app.command("suspend")
def suspend(hosts: HostlistArgument, config: ConfigOption = None, db: DbOption = None) -> None:
    """SuspendProgram: put these nodes to sleep through their agents."""
    _program("suspend", hosts, config, db)


@app.command("resume")
def resume(hosts: HostlistArgument, config: ConfigOption = None, db: DbOption = None) -> None:
    """ResumeProgram: wake these nodes (Wake-on-LAN, IPMI or the wake command)."""
    _program("resume", hosts, config, db)


@app.command("resume-fail")
def resume_fail(hosts: HostlistArgument, config: ConfigOption = None, db: DbOption = None) -> None:
    """ResumeFailProgram: these nodes missed ResumeTimeout; wake them again."""
    _program("resume-fail", hosts, config, db)


def _program(program: str, hosts: str, config: Path | None, db: str | None) -> None:
    settings = load(config, db=db)
    now = time.time()
    with reported_errors(PROG):
        recorded = slurm_service.record(store(config, db), settings.slurm, program, hosts, now)
    done = [r.node for r in recorded if r.request_id is not None]
    unknown = [r.slurm for r in recorded if r.request_id is None]
    line = f"{iso(now)} {program} {hosts}: recorded {len(done)} ({' '.join(done) or 'none'})"
    if unknown:
        line += f"; not dormouse nodes: {' '.join(unknown)}"
    typer.echo(f"{PROG}: {line}", err=True)
    _log(settings, line)


def _log(settings: CoordinatorConfig, line: str) -> None:
    """Appended, never fatal: the request is recorded whether or not the log is writable."""
    path = settings.slurm.log_file
    if path == NO_FILE:
        path = settings.data_dir / "slurm.log"
    try:
        with path.open("a") as log:
            log.write(line + "\n")
    except OSError as exc:
        typer.echo(f"{PROG}: warning: cannot write {path}: {exc.strerror}", err=True)


@app.command("advise")
def advise(
    sacct: Annotated[
        Path | None,
        typer.Option("--sacct", metavar="FILE", help="sacct --parsable2 output (else run sacct)"),
    ] = None,
    since: Annotated[
        str, typer.Option("--since", metavar="DURATION", help="the history's last DURATION")
    ] = "30d",
    suspend_times: Annotated[
        str,
        typer.Option("--suspend-times", metavar="T1,T2", help="SuspendTime values to compare"),
    ] = "10m,30m,1h",
    max_wait: Annotated[
        str,
        typer.Option(
            "--max-wait", metavar="DURATION", help="mean wait a recommended timer may add"
        ),
    ] = "5m",
    nodes: Annotated[
        int | None, typer.Option("--nodes", help="fleet size (else the store's nodes)")
    ] = None,
    gpus_per_node: Annotated[int, typer.Option("--gpus-per-node", help="with --nodes")] = 8,
    fleet: Annotated[
        Path | None,
        typer.Option("--fleet", help="a TOML file of node types (\\[\\[nodes]] tables)"),
    ] = None,
    config: ConfigOption = None,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Replay the site's Slurm history: kWh and cost saved and wait added by each
    SuspendTime and by dormouse's own policy, a ResumeTimeout covering the measured wakes,
    and the slurm.conf lines to paste."""
    settings = load(config, db=db)
    with reported_errors(PROG):
        window_s = _seconds("--since", since)
        timers = [_seconds("--suspend-times", t) for t in suspend_times.split(",") if t.strip()]
        bound_s = _seconds("--max-wait", max_wait)
        if not timers or window_s <= 0:
            raise ConfigError("--suspend-times needs a value and --since must be over 0")
        jobs = _history(sacct, settings, window_s)
    engine = store(config, db)
    with reported_errors(PROG):
        samples = slurm_service.wake_samples(engine)
        measured = quantile(samples, 0.5)
        kinds = _fleet(fleet, nodes, gpus_per_node, measured) or slurm_service.fleet(
            engine, measured or settings.power.resume_latency
        )
        if not kinds:
            fail("no nodes in the store yet: give the fleet with --nodes N or --fleet FILE")
        wakes = advice.wake_times(samples, max(k.resume_latency_s for k in kinds))
        planned = advice.runs(settings.power, timers)
        tariff = prices(settings.cost).on_trace()
    with Progress(disable=as_json, transient=True) as progress:
        task = progress.add_task("replaying", total=len(jobs) * len(planned))
        summaries = slurm_service.replay(
            jobs, kinds, planned, tariff, lambda n: progress.advance(task, n)
        )
    table = advice.rows(summaries, planned)
    chosen = advice.recommend(table, bound_s)
    lines = advice.conf_lines(chosen, wakes, dormouse_decides=settings.slurm.decides == "dormouse")
    answer = {
        "jobs": len(jobs),
        "nodes": sum(k.count for k in kinds),
        "span_days": (max(j.submit_s + j.runtime_s for j in jobs) - jobs[0].submit_s) / 86400,
        "policies": [asdict(r) for r in table],
        "recommended": chosen.name if chosen else None,
        "wakes": asdict(wakes),
        "resume_timeout_s": wakes.resume_timeout_s,
        "slurm_conf": lines,
    }
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
        return
    _print(answer, table)


def _seconds(flag: str, text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}") from None


def _history(path: Path | None, settings: CoordinatorConfig, window_s: float) -> list[TraceJob]:
    """The jobs of the window: sacct's, or the file's last `window_s` before its last submit."""
    if path is None:
        text = accounting.history(settings.slurm.sacct, window_s)
        jobs = parse_trace(io.StringIO(text), TraceOptions(), "sacct")
        if not jobs:
            raise ConfigError(f"sacct: no jobs in the last {window_s:g}s")
    else:
        jobs = read_trace(path, None)
    last = jobs[-1].submit_s
    return [j for j in jobs if j.submit_s >= last - window_s]


def _fleet(path: Path | None, nodes: int | None, gpus: int, wake_s: float | None) -> list[NodeType]:
    """The fleet the flags give (none: the store's): a file as written; `--nodes` of the
    default type, resuming in the measured median wake when there is one."""
    if path is not None:
        return parse_fleet(path.read_text(), str(path))
    if nodes is not None:
        if nodes < 1 or gpus < 0:
            raise ConfigError("--nodes must be 1 or more and --gpus-per-node 0 or more")
        kind = default_type(nodes, gpus)
        return [replace(kind, resume_latency_s=wake_s) if wake_s else kind]
    return []


def _print(answer: dict[str, Any], table: list[advice.Row]) -> None:
    wakes = answer["wakes"]
    out = Table(
        title=f"{answer['jobs']:,} jobs over {answer['span_days']:.1f} days on "
        f"{answer['nodes']:,} nodes, against never sleeping"
    )
    for column in ("policy", "kWh", "saved kWh", "saved", "cost saved", "wait added", "wakes"):
        out.add_column(column, justify="left" if column == "policy" else "right")
    for row in table:
        mark = " (recommended)" if row.name == answer["recommended"] else ""
        out.add_row(
            row.name + mark,
            f"{row.kwh:,.0f}",
            f"{row.kwh_saved:,.0f}",
            "-" if row.saved_pct is None else f"{row.saved_pct:.1f} %",
            "-" if row.cost_saved is None else f"{row.cost_saved:,.2f}",
            "-" if row.wait_added_s is None else f"{row.wait_added_s:,.0f} s",
            f"{row.wakes:,}",
        )
    console = table_console()
    console.print(out)
    p99 = wakes["p99_s"]
    measured = f"p99 {p99:.0f} s" if p99 is not None else "none measured"
    typer.echo(
        f"\nwakes: {measured}; ResumeTimeout {answer['resume_timeout_s']:.0f} s "
        f"({wakes['basis']})\n\nslurm.conf:"
    )
    for line in answer["slurm_conf"]:
        typer.echo(f"  {line}")
