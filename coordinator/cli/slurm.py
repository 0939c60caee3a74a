"""`dormouse slurm suspend|resume|resume-fail HOSTLIST`: the programs slurm.conf names as
SuspendProgram, ResumeProgram and ResumeFailProgram (docs/slurm.md).

Slurm does not keep their output, so each appends a line to `[slurm] log_file` (and says it
on stderr, for the journal when run by hand): the hosts recorded, the hosts dormouse does
not know. Exit 0 once recorded; 2 with one line for a hostlist Slurm would not write or a
store that cannot be reached (Slurm then marks the nodes as it does for any failed program).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from coordinator.cli.common import PROG, DbOption, load, store
from coordinator.services import slurm as slurm_service
from coordinator.settings import CoordinatorConfig
from shared.config import NO_FILE
from shared.edge.config_cli import ConfigOption
from shared.edge.console import reported_errors
from shared.units import iso

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
