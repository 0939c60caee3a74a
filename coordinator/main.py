"""`dormouse`: the operator's command line (one typer sub-app per noun)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
import typer

from coordinator import __version__
from coordinator.cli import jobs as jobs_cli
from coordinator.cli import power as power_cli
from coordinator.cli import report as report_cli
from coordinator.cli import simulate as sim_cli
from coordinator.cli.common import (
    PROG,
    DbOption,
    JsonOption,
    fail,
    load,
    positive_duration,
    store,
)
from coordinator.daemon import cli as demo_cli
from coordinator.daemon.main import serve
from coordinator.services import history
from coordinator.settings import DEFAULT_CONFIG_PATH, CoordinatorConfig
from coordinator.store import nodes as node_rows
from coordinator.store import series as series_rows
from coordinator.store import stats as stat_rows
from coordinator.store.engine import create_engine, current_revision, head_revision, upgrade
from shared.edge.config_cli import ConfigOption, config_app
from shared.edge.console import print_rows, reported_errors
from shared.errors import ConfigError
from shared.metrics import BY_NAME, METRICS, Scope
from shared.signing import generate_key
from shared.units import parse_duration

app = typer.Typer(
    name=PROG,
    help="Run a fleet of CPU/GPU servers cheaply.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
key_app = typer.Typer(help="Manage the HMAC key that signs commands.", no_args_is_help=True)
db_app = typer.Typer(help="The SQL store: schema migrations.", no_args_is_help=True)
app.add_typer(config_app(CoordinatorConfig, DEFAULT_CONFIG_PATH, PROG), name="config")
app.add_typer(key_app, name="key")
app.add_typer(db_app, name="db")
jobs_cli.register(app)
power_cli.register(app)
report_cli.register(app)
sim_cli.register(app)
demo_cli.register(app)
NODE_COLUMNS = [
    "node",
    "state",
    "last_seen",
    "cpu_util_pct",
    "mem_used_bytes",
    "mem_total_bytes",
    "gpus",
    "gpu_util_pct",
    "power_w",
    "jobs",
    "connections",
]


@app.command("run")
def run(
    config: ConfigOption = None,
    broker: Annotated[str | None, typer.Option(help="mqtt://host:port")] = None,
    db: DbOption = None,
) -> None:
    """Run the coordinator daemon: ingest telemetry into the store."""
    settings = load(config, broker=broker, db=db)
    logging.basicConfig(
        stream=sys.stderr, level=settings.log_level, format="%(levelname)s %(name)s: %(message)s"
    )
    with reported_errors(PROG):
        asyncio.run(serve(settings))


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None, db: DbOption = None) -> None:
    """Create the store, or migrate it to this release's schema."""
    settings = load(config, db=db)
    with reported_errors(PROG):
        engine = create_engine(settings.db_url)
        try:
            before = upgrade(engine)
        except sa.exc.SQLAlchemyError as exc:
            raise ConfigError(f"db: migration failed: {exc}") from None
    typer.echo(f"store at revision {head_revision()} (was {before or 'empty'})")


@db_app.command("current")
def db_current(config: ConfigOption = None, db: DbOption = None) -> None:
    """Print the store's schema revision and the one this release needs."""
    settings = load(config, db=db)
    with reported_errors(PROG):
        try:
            revision = current_revision(create_engine(settings.db_url))
        except sa.exc.SQLAlchemyError as exc:
            raise ConfigError(f"db: cannot open the store: {exc}") from None
    typer.echo(f"store: {revision or 'empty'}; this release: {head_revision()}")


@app.command("nodes")
def nodes(config: ConfigOption = None, db: DbOption = None, as_json: JsonOption = False) -> None:
    """One row per node: state, when last seen, and its latest sample."""
    with store(config, db).connect() as conn:
        views = node_rows.load_nodes(conn)
    rows = []
    for view in views:
        latest = {k: v for k, v in view.latest.items() if k in NODE_COLUMNS}
        seen = view.last_seen
        rows.append(
            {
                **latest,
                "node": view.name,
                "state": view.state,
                "last_seen": seen if as_json or seen is None else history.iso(seen),
            }
        )
    print_rows(rows, NODE_COLUMNS, as_json=as_json)


@app.command("status")
def status(config: ConfigOption = None, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Messages received, stored and dropped (by reason), lag and store size."""
    with store(config, db).connect() as conn:
        stats = stat_rows.read_stats(conn)
        size = stat_rows.store_size_bytes(conn)
    rows = [
        {"key": k, "value": v, "updated": history.iso(at)} for k, (v, at) in sorted(stats.items())
    ]
    rows.append({"key": "store_bytes", "value": size, "updated": history.iso(time.time())})
    print_rows(rows, ["key", "value", "updated"], as_json=as_json)


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


@app.command("history")
def history_command(
    node: Annotated[str | None, typer.Option(help="node name")] = None,
    metric: Annotated[str | None, typer.Option(help="metric name (--list-metrics)")] = None,
    gpu: Annotated[int, typer.Option(help="GPU index, for GPU metrics")] = 0,
    since: Annotated[str, typer.Option(help="start: 24h (ago) or ISO-8601")] = "24h",
    until: Annotated[str, typer.Option(help="end: now, 1h (ago) or ISO-8601")] = "now",
    step: Annotated[str, typer.Option(help="one point per step, e.g. 1m")] = "1m",
    agg: Annotated[str, typer.Option(help="avg, min or max (counters show the increase)")] = "avg",
    output: Annotated[str, typer.Option("--format", help="table, csv, json or plot")] = "table",
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
            ],
            ["metric", "unit", "kind", "scope", "help"],
            as_json=output == "json",
        )
        return
    settings = load(config, db=db)
    query = build_query(settings, node, metric, gpu, since, until, step, agg, output)
    engine = store(config, db)
    with engine.connect() as conn:
        if query.node not in node_rows.known_nodes(conn):
            fail(f"unknown node {query.node!r}; nodes: {', '.join(node_rows.known_nodes(conn))}")
        tier = history.choose_tier(query.step_s, query.since, time.time(), settings.retention)
        points = series_rows.history(conn, query, tier)
    table = history.rows(points, query.metric, agg)
    if output == "csv":
        typer.echo(history.as_csv(table), nl=False)
    elif output == "json":
        typer.echo(history.as_json(table, query.metric, query.node))
    elif output == "plot":
        typer.echo(history.as_bars(table, query.metric))
    else:
        print_rows(
            table,
            ["time", "value", "count"],
            as_json=False,
            title=f"{query.node} {query.metric.name} ({query.metric.unit}), {tier} tier",
        )
    if png is not None:
        try:
            history.write_png(table, query.metric, query.node, str(png))
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
) -> series_rows.SeriesQuery:
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
    return series_rows.SeriesQuery(
        node=node,
        metric=definition,
        gpu_index=gpu if definition.scope is Scope.GPU else -1,
        since=parse_when(since, now),
        until=parse_when(until, now),
        step_s=step_s,
    )


@app.command("version")
def version() -> None:
    """Print the version."""
    typer.echo(f"dormouse {__version__}")


@key_app.command("generate")
def key_generate(
    config: ConfigOption = None,
    out: Annotated[
        Path | None, typer.Option(help="where to write (default: command_key_file)")
    ] = None,
    force: Annotated[bool, typer.Option(help="replace an existing key")] = False,
) -> None:
    """Write a new random key, readable by its owner only. Copy it to every agent."""
    with reported_errors(PROG):
        target = out or load(config).command_key_file
        write_key_file(target, force=force)
    typer.echo(f"wrote {target}")


def write_key_file(path: Path, *, force: bool) -> None:
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to replace it (agents need the new key)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(generate_key() + "\n")
    path.chmod(0o600)


def main() -> None:
    app()
