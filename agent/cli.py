"""`dormouse-agent`: the per-server daemon's command line."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from agent import __version__
from agent.install import AGENT_DAEMON
from agent.samplers.base import Availability
from agent.sampling import take_sample
from agent.service import (
    check_broker,
    check_jobs,
    check_key,
    check_spool,
    close_samplers,
    host_samplers,
    serve,
)
from agent.settings import DEFAULT_CONFIG_PATH, AgentConfig
from shared.edge import logs
from shared.edge.config_cli import ConfigOption, config_app, load_from_cli
from shared.edge.console import OneLineErrors, add_version_flag, print_rows, reported_errors
from shared.edge.install import ConfigFileOption, RootOption, install, say_installed
from shared.units import parse_duration

PROG = "dormouse-agent"
app = typer.Typer(
    name=PROG,
    cls=OneLineErrors,
    help="Sample this server, publish telemetry, run jobs, sleep when told.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(config_app(AgentConfig, DEFAULT_CONFIG_PATH, PROG), name="config")
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]


def load(config: Path | None, **overrides: Any) -> AgentConfig:
    with reported_errors(PROG):
        loaded: AgentConfig = load_from_cli(AgentConfig, DEFAULT_CONFIG_PATH, config, overrides)
    return loaded


@app.command("run")
def run(
    config: ConfigOption = None,
    broker: Annotated[
        str | None, typer.Option(metavar="URL", help="MQTT broker, e.g. mqtt://host:1883")
    ] = None,
    node: Annotated[str | None, typer.Option(metavar="NODE", help="node name")] = None,
    interval: Annotated[
        str | None, typer.Option(metavar="DURATION", help="time between samples, e.g. 1s")
    ] = None,
    publish_interval: Annotated[
        str | None, typer.Option(metavar="DURATION", help="time between batches")
    ] = None,
    spool_dir: Annotated[str | None, typer.Option(metavar="DIR", help="spool directory")] = None,
) -> None:
    """Run the agent daemon (what the systemd unit starts)."""
    settings = load(
        config,
        broker=broker,
        node=node,
        interval=interval,
        publish_interval=publish_interval,
        spool_dir=spool_dir,
    )
    logs.configure(settings.log_level)
    with reported_errors(PROG):
        asyncio.run(serve(settings))


@app.command("sample")
def sample(
    config: ConfigOption = None,
    as_json: JsonOption = False,
    over: Annotated[
        str, typer.Option(metavar="DURATION", help="measure CPU utilisation over this long")
    ] = "250ms",
) -> None:
    """Take one sample of this host, print it and exit."""
    settings = load(config)
    try:
        seconds = parse_duration(over)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--over") from None
    samplers = host_samplers(settings)
    time.sleep(seconds)
    taken = take_sample(samplers, time.time())
    close_samplers(samplers)
    if as_json:
        typer.echo(json.dumps(taken.to_wire(), indent=2))
        return
    rows = [{"metric": k, "value": v} for k, v in taken.metrics.items()]
    rows += [
        {"metric": f"gpu{g.index}.{k}", "value": v}
        for g in taken.gpus
        for k, v in g.metrics.items()
    ]
    print_rows(rows, ["metric", "value"], as_json=False)


@app.command("check")
def check(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Say what works on this host; exit 1 if something required is broken."""
    settings = load(config)
    samplers = host_samplers(settings)
    results = [s.check() for s in samplers]
    close_samplers(samplers)
    results += [
        asyncio.run(check_broker(settings)),
        check_spool(settings),
        check_jobs(settings),
        check_key(settings),
    ]
    rows = [
        {"check": r.name, "ok": r.ok, "required": r.required, "detail": r.detail} for r in results
    ]
    print_rows(rows, ["check", "ok", "required", "detail"], as_json=as_json)
    if any(r.required and not r.ok for r in results):
        raise typer.Exit(1)


@app.command("install")
def install_command(root: RootOption = Path("/"), config: ConfigFileOption = None) -> None:
    """Write the systemd unit and a commented config; print how to start it."""
    if config is not None:
        load(config)  # refuse a config the agent would refuse, before installing it
    with reported_errors(PROG):
        done = install(AGENT_DAEMON, root, config)
    key = (load(config) if config else AgentConfig()).command_key_file
    say_installed(
        done,
        f"copy the coordinator's command key to {key} (mode 0600; `dormouse key generate`",
        "makes one), set the broker in the config, and run",
        "systemctl daemon-reload && systemctl enable --now dormouse-agent",
    )


@app.command("version")
def version() -> None:
    """Print the version."""
    typer.echo(VERSION)


VERSION = f"dormouse-agent {__version__}"
add_version_flag(app, VERSION)


def main() -> None:
    app()


__all__ = ["Availability", "app", "main"]
