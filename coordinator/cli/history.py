"""`dormouse history`: parse the query, ask the history service, show the points."""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any

import typer

from coordinator.cli.common import PROG, DbOption, fail, load, positive_duration, store
from coordinator.core.fleet import parse_by
from coordinator.core.series import FleetQuery, SeriesQuery
from coordinator.services import history
from coordinator.settings import CoordinatorConfig
from shared.config import parse_labels as config_labels
from shared.edge.config_cli import ConfigOption
from shared.edge.console import print_rows, reported_errors
from shared.metrics import BY_NAME, METRICS, Metric, Scope
from shared.units import iso, parse_duration

PANEL = "Reports"


def register(root: typer.Typer) -> None:
    root.command("history", rich_help_panel=PANEL)(history_command)


def parse_when(text: str, now: float, flag: str) -> float:
    """ "24h" (ago), "now", or an ISO-8601 time; a bad one names `flag`."""
    if text == "now":
        return now
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: expected a duration ago (24h) or ISO-8601", param_hint=flag
        ) from None


def history_command(
    node: Annotated[str | None, typer.Option(metavar="NODE", help="node name")] = None,
    metric: Annotated[
        str | None, typer.Option(metavar="METRIC", help="metric name (--list-metrics)")
    ] = None,
    gpu: Annotated[
        int | None,
        typer.Option(help="GPU index, for GPU metrics (one node: 0; --by: every GPU)"),
    ] = None,
    nodes: Annotated[
        str | None, typer.Option(metavar="GLOB", help="the nodes whose name matches (--by)")
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option(metavar="K=V", help="only nodes with this label (repeatable; --by)"),
    ] = None,
    by: Annotated[
        str | None,
        typer.Option(
            metavar="node|label:KEY|fleet",
            help="one series per group (default without --node: fleet)",
        ),
    ] = None,
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
            metavar="avg|min|max|sum|p95",
            help="how a step is summed up (counters: the increase); --by also sum and p95",
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
    """A time series of one metric of one node, or one per group of nodes (--by), from the
    coarsest tier that serves the step."""
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
    if by is not None or node is None:
        ask = Grouped(by or "fleet", node or nodes, parse_labels(label or []))
        try:
            parse_by(ask.by)  # before the store: a typo is told first
        except ValueError as exc:
            fail(str(exc))
        query_fleet = build_fleet(metric, gpu, since, until, step, agg, output)
        with reported_errors(PROG):
            answer = history.grouped(
                store(config, db), query_fleet, ask.by, ask.nodes, ask.labels,
                settings.retention, time.time(),
            )  # fmt: skip
        show_grouped(answer, output, png)
        return
    query = build_query(settings, node, metric, gpu or 0, since, until, step, agg, output)
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
            write_png({query.node: table}, query.metric, str(png))
        except RuntimeError as exc:
            fail(str(exc))


@dataclass(frozen=True, slots=True)
class Grouped:
    by: str
    nodes: str | None
    labels: dict[str, str]


def parse_labels(pairs: list[str]) -> dict[str, str]:
    """--label K=V (repeatable), checked as every label is (`shared.config`)."""
    try:
        return config_labels(",".join(pairs))
    except ValueError as exc:
        fail(f"--label: {exc}")


def check_metric(metric: str | None) -> Metric:
    if metric is None:
        fail("--metric is required (see --list-metrics)")
    if metric not in BY_NAME or BY_NAME[metric].vector:
        names = ", ".join(m.name for m in METRICS if not m.vector)
        fail(f"unknown metric {metric!r}; metrics: {names}")
    return BY_NAME[metric]


def check_format(output: str) -> None:
    if output not in {"table", "csv", "json", "plot"}:
        fail("--format must be table, csv, json or plot")


def build_fleet(
    metric: str | None,
    gpu: int | None,
    since: str,
    until: str,
    step: str,
    agg: str,
    output: str,
) -> FleetQuery:
    definition = check_metric(metric)
    if agg not in history.FLEET_AGGREGATES:
        fail(f"--agg must be one of {', '.join(history.FLEET_AGGREGATES)}")
    check_format(output)
    now = time.time()
    return FleetQuery(
        metric=definition,
        since=parse_when(since, now, "--since"),
        until=parse_when(until, now, "--until"),
        step_s=positive_duration(step, "--step"),
        agg=agg,
        gpu=gpu if definition.scope is Scope.GPU else None,
    )


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
    definition = check_metric(metric)
    if agg not in history.AGGREGATES:
        fail(f"--agg must be one of {', '.join(history.AGGREGATES)} (sum, p95: with --by)")
    check_format(output)
    now = time.time()
    step_s = positive_duration(step, "--step")
    return SeriesQuery(
        node=str(node),
        metric=definition,
        gpu_index=gpu if definition.scope is Scope.GPU else -1,
        since=parse_when(since, now, "--since"),
        until=parse_when(until, now, "--until"),
        step_s=step_s,
    )


def group_name(group: dict[str, object]) -> str:
    return ",".join(f"{k}={v}" for k, v in group.items()) or "fleet"


def flat(answer: dict[str, Any]) -> list[dict[str, object]]:
    """The series as rows: time, ts, group, value."""
    return [
        {"time": iso(ts), "ts": ts, "group": group_name(s["group"]), "value": value}
        for s in answer["series"]
        for ts, value in s["points"]
    ]


def show_grouped(answer: dict[str, Any], output: str, png: Path | None) -> None:
    rows = flat(answer)
    if output == "json":
        typer.echo(json.dumps(answer, indent=2))
    elif output == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=["time", "ts", "group", "value"])
        writer.writeheader()
        writer.writerows(rows)
        typer.echo(out.getvalue(), nl=False)
    elif output == "plot":
        metric = BY_NAME[answer["metric"]]
        for series in answer["series"]:
            typer.echo(f"[{group_name(series['group'])}]")
            table = [{"time": iso(ts), "value": v} for ts, v in series["points"]]
            typer.echo(to_bars(table, metric))
    else:
        title = f"{answer['metric']} ({answer['unit']}), {answer['tier']} tier"
        print_rows(rows, ["time", "group", "value"], as_json=False, title=title)
    if png is not None:
        lines = {
            group_name(s["group"]): [{"ts": ts, "value": v} for ts, v in s["points"]]
            for s in answer["series"]
        }
        try:
            write_png(lines, BY_NAME[answer["metric"]], str(png))
        except RuntimeError as exc:
            fail(str(exc))


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


def write_png(lines: dict[str, list[dict[str, object]]], metric: Metric, path: str) -> None:
    """A line chart, one line per series, with matplotlib (the `plot` extra). A step with
    no point is a gap in the line, never a line drawn across it."""
    try:
        import matplotlib as mpl  # noqa: PLC0415 - optional, heavy: only for --png

        mpl.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        raise RuntimeError("--png needs matplotlib: pip install 'dormouse[plot]'") from None
    from matplotlib import dates  # noqa: PLC0415

    figure, axes = plt.subplots(figsize=(10, 4))
    for name, points in lines.items():
        table = with_gaps(points)
        times = [dates.date2num(datetime.fromtimestamp(_number(r["ts"]), UTC)) for r in table]
        axes.plot(times, [_number(r["value"]) for r in table], label=name)
    axes.xaxis_date()
    axes.set_title(f"{', '.join(lines)}: {metric.name}")
    if len(lines) > 1:
        axes.legend()
    axes.set_ylabel(metric.unit)
    figure.autofmt_xdate()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _number(value: object) -> float:
    """A point's value for a chart: a gap (no samples in the step) is NaN, not 0."""
    return float(value) if isinstance(value, int | float) else math.nan


def with_gaps(table: list[dict[str, object]]) -> list[dict[str, object]]:
    """A NaN point wherever consecutive points are further apart than the usual step, so
    a chart breaks its line over a time with no samples."""
    times = [_number(r["ts"]) for r in table]
    gaps = [b - a for a, b in pairwise(times)]
    if not gaps:
        return table
    usual = sorted(gaps)[len(gaps) // 2]
    out: list[dict[str, object]] = [table[0]]
    for row, gap, start in zip(table[1:], gaps, times[:-1], strict=True):
        if gap > 1.5 * usual:
            out.append({"ts": start + usual, "value": None})
        out.append(row)
    return out
