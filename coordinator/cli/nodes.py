"""`dormouse nodes [show NAME]` (and `dormouse node NAME`): the fleet as the store holds it."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from coordinator.cli.common import DbOption, JsonOption, fail, store
from coordinator.core.registry import NodeView
from coordinator.services import nodes as node_service
from shared.edge.config_cli import ConfigOption
from shared.edge.console import print_json, print_rows
from shared.units import iso

PANEL = "Fleet"
COLUMNS = [
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
    views = node_service.listing(store(config, db))
    print_rows([row(v, as_json=as_json) for v in views], COLUMNS, as_json=as_json)


def row(view: NodeView, *, as_json: bool) -> dict[str, Any]:
    seen = view.last_seen
    return {
        **{k: v for k, v in view.latest.items() if k in COLUMNS},
        "node": view.name,
        "state": view.state.value,
        "last_seen": seen if as_json or seen is None else iso(seen),
    }


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(metavar="NODE", help="node name")],
    config: ConfigOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """One node in full: state, capacity, how it sleeps and wakes, its latest sample."""
    engine = store(config, db)
    views = {v.name: v for v in node_service.listing(engine)}
    view = views.get(name)
    if view is None:
        fail(f"unknown node {name!r}; nodes: {', '.join(sorted(views)) or 'none yet'}")
    wakes = node_service.wake_times(engine, name)
    details = row(view, as_json=as_json) | {
        "state_since": view.state_since if as_json else iso(view.state_since),
        "wakes_measured": wakes.count,
        "wake_p50_s": wakes.p50_s,
        "wake_p95_s": wakes.p95_s,
        "hello": view.hello.to_wire() if view.hello else None,
    }
    if as_json:
        print_json(details)
        return
    print_rows(
        [{"field": k, "value": v} for k, v in details.items()], ["field", "value"], as_json=False
    )


def shortcuts(root: typer.Typer) -> None:
    root.command("node", rich_help_panel=PANEL, help="Same as `nodes show NAME`.")(show)
