"""`dormouse history`: parse the query, ask the history service, show the points."""

from __future__ import annotations

import csv
import io
import json
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from coordinator.cli.common import PROG, DbOption, fail, load, positive_duration, store
from coordinator.core.series import SeriesQuery
from coordinator.services import history
from coordinator.settings import CoordinatorConfig
from shared.edge.config_cli import ConfigOption
from shared.edge.console import print_rows, reported_errors
from shared.metrics import BY_NAME, METRICS, Metric, Scope
from shared.units import parse_duration

PANEL = "Reports"


def register(root: typer.Typer) -> None:
    root.command("history", rich_help_panel=PANEL)(history_command)


def parse_when(text: str, now: float) -> float:
    """ "24h" (ago), "now", or an ISO-8601 time."""
    if text == "now":
        return now
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise typer.BadParameter(f"{text!r}: expected a duration ago (24h) or ISO-8601") from None


def history_command(
    node: Annotated[str | None, typer.Option(metavar="NODE", help="node name")] = None,
    metric: Annotated[
        str | None, typer.Option(metavar="METRIC", help="metric name (--list-metrics)")
    ] = None,
    gpu: Annotated[int, typer.Option(help="GPU index, for GPU metrics")] = 0,
    since: Annotated[
        str, typer.Option(metavar="WHEN", help="start: 24h (ago) or ISO-8601")
    ] = "24h",
    until: Annotated[
        str, typer.Option(metavar="WHEN", help="end: now, 1h (ago) or ISO-8601")
    ] = "now",
    step: Annotated[
        str, typer.Option(metavar="DURATION", help="one point per step, e.g. 1m")
    ] = "1m",
    agg: Annotated[
        str,
        typer.Option(
            metavar="avg|min|max", help="how a step is summed up (counters show the increase)"
        ),
    ] = "avg",
    output: Annotated[
        str, typer.Option("--format", metavar="table|csv|json|plot", help="output format")
    ] = "table",
    png: Annotated[Path | None, typer.Option(help="also write a chart to this PNG")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="same as --format json")] = False,
    list_metrics: Annotated[bool, typer.Option("--list-metrics", help="name the metrics")] = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """A time series of one metric of one node, from the coarsest tier that serves the step."""
    output = "json" if as_json else output
    if list_metrics:
        print_rows(
            [
                {
                    "metric": m.name,
                    "unit": m.unit,
                    "kind": m.kind.value,
                    "scope": m.scope.value,
                    "help": m.help,
                }
                for m in METRICS
                if not m.vector  # per-core lists are in the raw samples, not a series
            ],
            ["metric", "unit", "kind", "scope", "help"],
            as_json=output == "json",
        )
        return
    settings = load(config, db=db)
    query = build_query(settings, node, metric, gpu, since, until, step, agg, output)
    engine = store(config, db)
    with reported_errors(PROG):
        tier, table = history.series(engine, query, agg, settings.retention, time.time())
    if output == "csv":
        typer.echo(to_csv(table), nl=False)
    elif output == "json":
        typer.echo(to_json(table, query.metric, query.node))
    elif output == "plot":
        typer.echo(to_bars(table, query.metric))
    else:
        print_rows(
            table,
            ["time", "value", "count"],
            as_json=False,
            title=f"{query.node} {query.metric.name} ({query.metric.unit}), {tier} tier",
        )
    if png is not None:
        try:
            write_png(table, query.metric, query.node, str(png))
        except RuntimeError as exc:
            fail(str(exc))


def build_query(
    settings: CoordinatorConfig,
    node: str | None,
    metric: str | None,
    gpu: int,
    since: str,
    until: str,
    step: str,
    agg: str,
    output: str,
) -> SeriesQuery:
    if node is None or metric is None:
        fail("--node and --metric are required (see --list-metrics)")
    if metric not in BY_NAME or BY_NAME[metric].vector:
        names = ", ".join(m.name for m in METRICS if not m.vector)
        fail(f"unknown metric {metric!r}; metrics: {names}")
    if agg not in history.AGGREGATES:
        fail(f"--agg must be one of {', '.join(history.AGGREGATES)}")
    if output not in {"table", "csv", "json", "plot"}:
        fail("--format must be table, csv, json or plot")
    now = time.time()
    step_s = positive_duration(step, "--step")
    definition = BY_NAME[metric]
    return SeriesQuery(
        node=node,
        metric=definition,
        gpu_index=gpu if definition.scope is Scope.GPU else -1,
        since=parse_when(since, now),
        until=parse_when(until, now),
        step_s=step_s,
    )


def to_csv(table: list[dict[str, object]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["time", "ts", "value", "count"])
    writer.writeheader()
    writer.writerows(table)
    return out.getvalue()


def to_json(table: list[dict[str, object]], metric: Metric, node: str) -> str:
    return json.dumps(
        {"node": node, "metric": metric.name, "unit": metric.unit, "points": table}, indent=2
    )


def to_bars(table: list[dict[str, object]], metric: Metric, width: int = 50) -> str:
    """A horizontal bar per point: readable in any terminal, and in a log."""
    values = [v for r in table if isinstance(v := r["value"], int | float)]
    if not values:
        return "no data"
    top = max(*values, 0.0) or 1.0
    lines = [f"{metric.name} ({metric.unit}), max {top:g}"]
    for row in table:
        value = row["value"]
        length = 0 if not isinstance(value, int | float) else max(0.0, value) / top * width
        bar = "█" * math.floor(length) + ("▌" if length % 1 >= 0.5 else "")
        shown = "-" if value is None else f"{value:.4g}"
        lines.append(f"{row['time']}  {bar:<{width + 1}} {shown}")
    return "\n".join(lines)


def write_png(table: list[dict[str, object]], metric: Metric, node: str, path: str) -> None:
    """A line chart, with matplotlib (the `plot` extra)."""
    try:
        import matplotlib as mpl  # noqa: PLC0415 - optional, heavy: only for --png

        mpl.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        raise RuntimeError("--png needs matplotlib: pip install 'dormouse[plot]'") from None
    from matplotlib import dates  # noqa: PLC0415

    times = [dates.date2num(datetime.fromtimestamp(_number(r["ts"]), UTC)) for r in table]
    figure, axes = plt.subplots(figsize=(10, 4))
    axes.plot(times, [_number(r["value"]) for r in table])
    axes.xaxis_date()
    axes.set_title(f"{node}: {metric.name}")
    axes.set_ylabel(metric.unit)
    figure.autofmt_xdate()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _number(value: object) -> float:
    """A point's value for a chart: a gap (no samples in the step) is NaN, not 0."""
    return float(value) if isinstance(value, int | float) else math.nan
