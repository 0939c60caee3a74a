"""`dormouse status`: the coordinator's figures as it last wrote them, the store's size, the
leading process and every process (ingest workers too) heard from lately."""

from __future__ import annotations

import time
from typing import Any

import typer

from coordinator.cli.common import PROG, DbOption, JsonOption, load, store
from coordinator.services import jobs as jobs_service
from coordinator.services import nodes as node_service
from shared.edge.config_cli import ConfigOption
from shared.edge.console import cell, print_rows
from shared.units import iso

PANEL = "Fleet"


def status(config: ConfigOption = None, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Messages received, stored and dropped (by reason), lag and store size."""
    engine = store(config, db)
    found = node_service.status(engine)
    held = jobs_service.placement_held(engine, load(config).command_key_file)
    if held is not None:
        typer.echo(f"{PROG}: warning: jobs are not being placed: {held}", err=True)
    now = time.time()
    sizes = [(k, (v, now)) for k, v in (found.tier_bytes or {}).items()]
    figures = [*sorted(found.figures.items()), ("store_bytes", (found.store_bytes, now)), *sizes]
    rows = [
        {
            "key": k,
            "value": v if as_json else cell(v, bytes_=k.endswith("_bytes")),
            "updated": at if as_json else iso(at),
        }
        for k, (v, at) in figures
    ]
    if found.leader is not None:
        rows.append(leader_row(found.leader, as_json=as_json))
    if found.workers:
        rows.append(workers_row(found.workers, as_json=as_json))
    print_rows(rows, ["key", "value", "updated"], as_json=as_json)


def leader_row(leader: node_service.Leader, *, as_json: bool) -> dict[str, Any]:
    """The process leading (its lock checked at `updated`): id, epoch and since when."""
    value: object = {"id": leader.holder, "epoch": leader.epoch, "since": leader.since}
    if not as_json:
        value = f"{leader.holder}, epoch {leader.epoch}, since {iso(leader.since)}"
    return {
        "key": "leader",
        "value": value,
        "updated": leader.renewed_at if as_json else iso(leader.renewed_at),
    }


def register(root: typer.Typer) -> None:
    root.command("status", rich_help_panel=PANEL)(status)


WORKER_FIGURES = ("samples_stored", "duplicates", "samples_buffered", "lag_p99_s")


def workers_row(workers: tuple[node_service.Worker, ...], *, as_json: bool) -> dict[str, Any]:
    """Every `dormouse run` process heard from lately: role and what it has stored."""
    listed = [
        {
            "id": w.id,
            "role": w.role,
            "started_at": w.started_at,
            "seen_at": w.seen_at,
            **{k: w.figures.get(k, 0.0) for k in WORKER_FIGURES},
        }
        for w in workers
    ]
    value: object = listed
    if not as_json:
        value = "; ".join(
            f"{w['id']} ({w['role']}): {cell(w['samples_stored'])} stored, "
            f"lag p99 {cell(w['lag_p99_s'])} s"
            for w in listed
        )
    newest = max(w.seen_at for w in workers)
    return {"key": "workers", "value": value, "updated": newest if as_json else iso(newest)}
