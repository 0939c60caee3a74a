"""`dormouse nodes [show NAME | drain NODE | undrain NODE]` (and the shortcuts `node`, `drain`,
`undrain`): the fleet as the store holds it, and operators' drains."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from coordinator.cli.common import (
    PROG,
    DbOption,
    JsonOption,
    fail,
    load,
    positive_duration,
    store,
)
from coordinator.core.snapshot import REFUSING
from coordinator.services import nodes as node_service
from shared.edge.config_cli import ConfigOption
from shared.edge.console import cell, print_json, print_rows, reported_errors
from shared.units import format_bytes, iso

PANEL = "Fleet"
BASE_COLUMNS = ["node", "state", "last_seen", *node_service.LATEST_FIELDS]
COLUMNS = [*BASE_COLUMNS, "health"]  # for people: drains and sick GPUs in one cell
JSON_COLUMNS = [
    *BASE_COLUMNS,
    "drained",
    "gpus_drained",
    "gpus_failed",
    "gpus_degraded",
    "commands",
]
GPU_COLUMNS = ["index", "health", "reason", "drained", "drain_reason"]
NodeArgument = Annotated[str, typer.Argument(metavar="NODE", help="node name")]
GpuOption = Annotated[
    int | None, typer.Option("--gpu", metavar="INDEX", min=0, help="one GPU, not the whole node")
]
app = typer.Typer(
    help="Every node: state, when last seen, its latest sample.", invoke_without_command=True
)


@app.callback()
def nodes(
    ctx: typer.Context,
    config: ConfigOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """One row per node: state, when last seen, and its latest sample."""
    if ctx.invoked_subcommand is not None:
        return
    settings = load(config, db=db)
    own_key = node_service.own_key_id(settings.command_key_file)
    found = node_service.summaries(store(config, db), own_key)
    rows = [readable(n, as_json=as_json) for n in found]
    print_rows(rows, JSON_COLUMNS if as_json else COLUMNS, as_json=as_json)


def readable(fields: dict[str, Any], *, as_json: bool) -> dict[str, Any]:
    """Times as ISO-8601 for people, epoch seconds for scripts."""
    if as_json:
        return fields
    times = {k: iso(fields[k]) for k in ("last_seen", "state_since") if fields.get(k) is not None}
    return fields | times | {"health": health_text(fields)}


def health_text(fields: dict[str, Any]) -> str:
    """ "ok", or what keeps work off the node: "drained", "no command key", "1 GPU failed"."""
    parts = ["drained"] if fields.get("drained") else []
    if fields.get("commands") in REFUSING:
        parts.append(fields["commands"].replace("key", "command key"))
    for key, word in (
        ("gpus_failed", "failed"),
        ("gpus_drained", "drained"),
        ("gpus_degraded", "degraded"),
    ):
        if fields.get(key):
            parts.append(f"{fields[key]} GPU{'s' if fields[key] > 1 else ''} {word}")
    return ", ".join(parts) or "ok"


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(metavar="NODE", help="node name")],
    config: ConfigOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """One node in full: state, capacity, how it sleeps and wakes, its latest sample."""
    engine = store(config, db)
    with reported_errors(PROG):
        own_key = node_service.own_key_id(load(config, db=db).command_key_file)
        details = readable(node_service.detail(engine, name, own_key), as_json=as_json)
    if as_json:
        print_json(details)
        return
    gpus = details.pop("gpu_health")
    events = details.pop("gpu_events")
    details |= hello_fields(details.pop("hello"))
    rows = [{"field": k, "value": cell(v, bytes_=k.endswith("_bytes"))} for k, v in details.items()]
    print_rows(rows, ["field", "value"], as_json=False)
    if gpus:
        print_rows(gpus, GPU_COLUMNS, as_json=False)
    if events:
        rows = [e | {"time": iso(e["ts"])} for e in events]
        print_rows(rows, ["time", "gpu_index", "kind", "reason"], as_json=False)


def hello_fields(hello: dict[str, Any] | None) -> dict[str, Any]:
    """The hello as a person reads it, a row per field (GPUs by model and memory), not as
    one dict (`--json` keeps it whole)."""
    if not hello:
        return {"hello": "not yet: its capacity is unknown"}
    models = [
        f"{g['index']}: {g['name']} ({format_bytes(g['mem_total_bytes'])})"
        for g in hello.get("gpus", [])
    ]
    keys = ("hostname", "agent_version", "cpus", "macs", "labels", "sleep_methods", "wake_methods")
    return {k: hello.get(k) for k in keys} | {"gpu_models": models, "hello_at": iso(hello["ts"])}


@app.command("drain")
def drain(
    name: NodeArgument,
    gpu: GpuOption = None,
    reason: Annotated[
        str, typer.Option("--reason", metavar="TEXT", help="why, for the log and `node NAME`")
    ] = "drained by an operator",
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """No new work on NODE (or one GPU) until `undrain`; running jobs go on."""
    with reported_errors(PROG):
        node_service.drain(store(config, db), name, gpu, reason, time.time())
    what = name if gpu is None else f"{name} GPU {gpu}"
    typer.echo(f"drained {what}: no new work from the coordinator's next pass")


@app.command("undrain")
def undrain(
    name: NodeArgument, gpu: GpuOption = None, config: ConfigOption = None, db: DbOption = None
) -> None:
    """Let NODE (or one GPU) take new work again."""
    with reported_errors(PROG):
        done = node_service.undrain(store(config, db), name, gpu, time.time())
    what = name if gpu is None else f"{name} GPU {gpu}"
    typer.echo(f"undrained {what}" if done else f"{what} was not drained")


@app.command("forget")
def forget(
    names: Annotated[
        list[str] | None, typer.Argument(metavar="NODE...", help="nodes to forget")
    ] = None,
    stale: Annotated[
        str | None,
        typer.Option(metavar="DURATION", help="also every node not heard from for this long"),
    ] = None,
    config: ConfigOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove nodes from the fleet (forged names, retired servers): their rows and every
    coordinator's memory of them; their history stays until it expires. A node with a job
    on it is kept (exit 1); a node still sending comes back."""
    stale_s = positive_duration(stale, "--stale") if stale is not None else None
    load(config, db=db)  # a bad config is told before a missing argument
    if not names and stale_s is None:
        fail("name the nodes to forget, or give --stale DURATION")
    with reported_errors(PROG):
        done = node_service.forget(store(config, db), names or [], stale_s, time.time())
    if as_json:
        print_json({"forgotten": done.forgotten, "refused": done.refused})
    else:
        typer.echo(f"forgot {len(done.forgotten)} node(s): {', '.join(done.forgotten) or '-'}")
        for name, why in done.refused.items():
            typer.echo(f"{PROG}: kept {name}: {why}", err=True)
    if done.refused:
        raise typer.Exit(1)


def shortcuts(root: typer.Typer) -> None:
    root.command("node", rich_help_panel=PANEL, help="Same as `nodes show NAME`.")(show)
    root.command("drain", rich_help_panel=PANEL, help="Same as `nodes drain NODE`.")(drain)
    root.command("undrain", rich_help_panel=PANEL, help="Same as `nodes undrain NODE`.")(undrain)
