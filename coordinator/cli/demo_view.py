"""What `dormouse demo` shows while it runs and when it ends (rich tables; no daemon here)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.table import Table

from coordinator.core.jobstate import JobRecord
from coordinator.core.registry import NodeView

LINE_EVERY_S = 5.0
Show = Callable[[list[NodeView], list[JobRecord], float], None]


def frame(views: list[NodeView], jobs: list[JobRecord], left: float) -> Group:
    """The live table on a terminal: nodes, then the newest jobs."""
    nodes = Table(title=f"nodes ({left:.0f}s left, Ctrl-C to stop)")
    for column in ("node", "state", "cpu %", "jobs", "power W"):
        nodes.add_column(column)
    for view in sorted(views, key=lambda v: v.name):
        latest = view.latest
        nodes.add_row(
            view.name,
            view.state.value,
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


def lines(console: Console) -> Show:
    """Off a terminal (a log, a pipe): one line of node states every few seconds."""
    last = [0.0]

    def line(views: list[NodeView], jobs: list[JobRecord], left: float) -> None:
        if time.monotonic() - last[0] >= LINE_EVERY_S:
            last[0] = time.monotonic()
            states = sorted(f"{v.name}:{v.state.value}" for v in views)
            console.print(f"{left:4.0f}s left | {' '.join(states)} | {len(jobs)} jobs")

    return line


def show_summary(console: Console, result: dict[str, Any], workdir: Path) -> None:
    table = Table(title="dormouse demo: summary")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        if key not in {"caveats", "console_url"}:  # the console stopped with the demo
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)
    for caveat in result.get("caveats", []):
        console.print(f"note: {caveat}", markup=False)
    console.print(f"store, logs and job output in {workdir}; all demo processes stopped")


def _num(value: object) -> str:
    return "-" if value is None else f"{value:.0f}" if isinstance(value, float) else str(value)
