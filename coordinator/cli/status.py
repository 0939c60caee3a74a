"""`dormouse status`: the coordinator's figures as it last wrote them, the store's size, the
leading process and every process (ingest workers too) heard from lately. `--json` prints
the document `GET /api/v1/status` answers."""

from __future__ import annotations

import time
from typing import Any

import typer

from coordinator.cli.common import PROG, DbOption, JsonOption, load, store
from coordinator.services import status as status_service
from shared.edge.config_cli import ConfigOption
from shared.edge.console import cell, print_json, print_rows
from shared.units import iso

PANEL = "Fleet"
SIZES = ("store_bytes", "store_bytes_raw", "store_bytes_minute", "store_bytes_hour")


def status(config: ConfigOption = None, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Messages received, stored and dropped (by reason), lag and store size."""
    engine = store(config, db)
    settings = load(config)
    found = status_service.document(engine, settings.command_key_file, settings.leader_lease)
    if (held := found["placement_held"]) is not None:
        typer.echo(f"{PROG}: warning: jobs are not being placed: {held}", err=True)
    if as_json:
        print_json(found)
        return
    print_rows(rows(found, time.time()), ["key", "value", "updated"], as_json=False)


def rows(found: dict[str, Any], now: float) -> list[dict[str, Any]]:
    """The document as a table for people: figures, sizes in bytes' units, the leader and
    the processes on a line each, times in ISO-8601."""
    figures = [(k, f["value"], f["updated"]) for k, f in found["figures"].items()]
    figures += [(k, found[k], now) for k in SIZES]
    listed = [
        {"key": k, "value": cell(v, bytes_="_bytes" in k), "updated": iso(at)}
        for k, v, at in figures
    ]
    if (leader := found["leader"]) is not None:
        text = f"{leader['id']}, epoch {leader['epoch']}, since {iso(leader['since'])}"
        listed.append({"key": "leader", "value": text, "updated": iso(leader["renewed_at"])})
    elif (last := found.get("last_leader")) is not None:
        silent = now - last["renewed_at"]
        text = f"none: {last['id']} (epoch {last['epoch']}) silent for {silent:.0f} s"
        listed.append({"key": "leader", "value": text, "updated": iso(last["renewed_at"])})
    if workers := found["workers"]:
        text = "; ".join(
            f"{w['id']} ({w['role']}): {cell(w['samples_stored'])} stored, "
            f"lag p99 {cell(w['lag_p99_s'])} s"
            for w in workers
        )
        newest = max(w["seen_at"] for w in workers)
        listed.append({"key": "workers", "value": text, "updated": iso(newest)})
    return listed


def register(root: typer.Typer) -> None:
    root.command("status", rich_help_panel=PANEL)(status)
