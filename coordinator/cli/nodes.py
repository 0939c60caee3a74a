"""`dormouse nodes [show NAME]` (and `dormouse node NAME`): the fleet as the store holds it."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from coordinator.cli.common import PROG, DbOption, JsonOption, store
from coordinator.services import nodes as node_service
from shared.edge.config_cli import ConfigOption
from shared.edge.console import print_json, print_rows, reported_errors
from shared.units import iso

PANEL = "Fleet"
COLUMNS = ["node", "state", "last_seen", *node_service.LATEST_FIELDS]
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
    found = node_service.summaries(store(config, db))
    print_rows([readable(n, as_json=as_json) for n in found], COLUMNS, as_json=as_json)


def readable(fields: dict[str, Any], *, as_json: bool) -> dict[str, Any]:
    """Times as ISO-8601 for people, epoch seconds for scripts."""
    if as_json:
        return fields
    times = {k: iso(fields[k]) for k in ("last_seen", "state_since") if fields.get(k) is not None}
    return fields | times


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
        details = readable(node_service.detail(engine, name), as_json=as_json)
    if as_json:
        print_json(details)
        return
    print_rows(
        [{"field": k, "value": v} for k, v in details.items()], ["field", "value"], as_json=False
    )


def shortcuts(root: typer.Typer) -> None:
    root.command("node", rich_help_panel=PANEL, help="Same as `nodes show NAME`.")(show)
