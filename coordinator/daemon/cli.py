"""`dormouse demo`: the README's first command. See `coordinator/demo.py`."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from coordinator.cli.common import fail, positive_duration
from coordinator.core.jobstate import JobRecord
from coordinator.daemon.coordinator import Coordinator
from coordinator.daemon.demo import Plan, run_demo

MAX_SIMULATED = 9


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    duration: Annotated[str, typer.Option("--duration", help="how long, e.g. 60s")] = "60s",
    workdir: Annotated[Path, typer.Option("--dir", help="working directory (store, logs)")] = Path(
        "dormouse-demo"
    ),
    nodes: Annotated[int, typer.Option("--nodes", help="simulated nodes beside this host")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """A fleet on this machine: broker, coordinator, agents, jobs, sleep and wake."""
    seconds = positive_duration(duration, "--duration")
    if not 1 <= nodes <= MAX_SIMULATED:
        fail(f"--nodes must be 1 to {MAX_SIMULATED}")
    console = Console(stderr=as_json)
    plan = Plan(workdir.resolve(), seconds, nodes)
    if console.is_terminal:
        with Live(console=console, refresh_per_second=2, transient=False) as live:
            result = asyncio.run(run_demo(plan, lambda c, j, left: live.update(frame(c, j, left))))
    else:
        last = [0.0]

        def line(coordinator: Coordinator, jobs: list[JobRecord], left: float) -> None:
            if time.monotonic() - last[0] >= 5:
                last[0] = time.monotonic()
                states = sorted(
                    f"{v.name}:{v.state}" for v in coordinator.parts.ingest.registry.nodes.values()
                )
                console.print(f"{left:4.0f}s left | {' '.join(states)} | {len(jobs)} jobs")

        result = asyncio.run(run_demo(plan, line))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        show_summary(console, result, plan.workdir)


def frame(coordinator: Coordinator, jobs: list[JobRecord], left: float) -> Group:
    nodes = Table(title=f"nodes ({left:.0f}s left, Ctrl-C to stop)")
    for column in ("node", "state", "cpu %", "jobs", "power W"):
        nodes.add_column(column)
    for view in sorted(coordinator.parts.ingest.registry.nodes.values(), key=lambda v: v.name):
        latest = view.latest
        nodes.add_row(
            view.name,
            view.state,
            _num(latest.get("cpu_util_pct")),
            _num(latest.get("jobs")),
            _num(latest.get("power_w")),
        )
    queue = Table(title="jobs")
    for column in ("id", "name", "state", "node", "deadline met"):
        queue.add_column(column)
    for job in jobs:
        met = "-" if job.deadline_met is None else str(job.deadline_met).lower()
        queue.add_row(job.id, job.name, job.state.value, job.node or "-", met)
    return Group(nodes, queue)


def show_summary(console: Console, result: dict[str, Any], workdir: Path) -> None:
    table = Table(title="dormouse demo: summary")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)
    console.print(f"store, logs and job output in {workdir}; all demo processes stopped")


def _num(value: object) -> str:
    return "-" if value is None else f"{value:.0f}" if isinstance(value, float) else str(value)
