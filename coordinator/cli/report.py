"""`dormouse report`: energy, cost and utilisation per node, per job and for the fleet."""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console

from coordinator.cli.common import DbOption, JsonOption, fail, load, positive_duration, store
from coordinator.power import chargeback
from coordinator.power.report import Report
from coordinator.services import report as report_service
from shared.edge.config_cli import ConfigOption
from shared.edge.console import print_rows
from shared.units import iso

OVER_BUDGET = 4
PANEL = "Reports"
NODE_COLUMNS = [
    "node",
    "kwh",
    "cost",
    "awake_h",
    "asleep_h",
    "busy_h",
    "utilisation_pct",
    "saved_kwh",
]
BY = ("all", *chargeback.BY)
JOB_COLUMNS = ["id", "name", "node", "share", "kwh", "cost", "saved_cost", "gpu_h", "cpu_h"]
CHARGE_COLUMNS = ["jobs", "gpu_h_allocated", "gpu_h_used", "efficiency", "kwh"]
COST_PARTS = [*chargeback.PARTS, "total"]


def register(root: typer.Typer) -> None:
    root.command("report", rich_help_panel=PANEL)(report_command)


def report_command(
    since: Annotated[
        str, typer.Option("--since", metavar="DURATION", help="how far back, e.g. 24h, 7d")
    ] = "7d",
    price_kwh: Annotated[
        float | None, typer.Option("--price-kwh", help="energy price (default: \\[cost] price_kwh)")
    ] = None,
    check_budget: Annotated[
        bool, typer.Option("--check-budget", help=f"exit {OVER_BUDGET} when over the budget")
    ] = False,
    top: Annotated[int, typer.Option("--jobs", help="jobs listed, by energy")] = 20,
    by: Annotated[
        str,
        typer.Option(
            "--by",
            metavar="all|account|user|node|job",
            help="the whole report (all), or chargeback rows by account, user, node or job",
        ),
    ] = "all",
    as_csv: Annotated[
        bool, typer.Option("--csv", help="with --by: the rows as CSV, for a spreadsheet")
    ] = False,
    config: ConfigOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """kWh, cost, awake/asleep hours, utilisation and energy saved by sleeping.

    With --by account|user|node|job: who spent it (GPU-hours held and used, kWh, cost).
    """
    window = positive_duration(since, "--since")
    if by not in BY:
        fail(f"--by must be one of {', '.join(BY)}, not {by!r}")
    if as_csv and (by == "all" or as_json):
        fail("--csv goes with --by account|user|node|job, and not with --json")
    if price_kwh is not None and price_kwh < 0:
        fail("--price-kwh must be 0 or more")
    settings = load(config, db=db)
    if check_budget and not settings.cost.budget:
        fail("--check-budget: no budget configured ([cost] budget)")
    engine = store(config, db)
    now = time.time()
    if by != "all":
        bill = report_service.charged(
            engine, settings, by, window_s=window, now=now, price_kwh=price_kwh
        )
        show_charges(bill, as_json=as_json, as_csv=as_csv)
        return
    result = report_service.build(engine, settings, window_s=window, now=now, price_kwh=price_kwh)
    show(result, top, as_json=as_json)
    if check_budget and result.budget is not None and result.budget.over:
        raise typer.Exit(OVER_BUDGET)


def show_charges(bill: report_service.Chargeback, *, as_json: bool, as_csv: bool) -> None:
    """`--by KEY`: one row per account, user, node or job, most expensive first."""
    rows = [chargeback.as_json(r, bill.by) for r in bill.rows]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    flat = [
        {k: v for k, v in r.items() if k != "cost"}
        | {f"cost_{p}": r["cost"][p] for p in COST_PARTS}  # type: ignore[index]
        for r in rows
    ]
    columns = [bill.by, *CHARGE_COLUMNS, *(f"cost_{p}" for p in COST_PARTS)]
    if as_csv:
        writer = csv.DictWriter(sys.stdout, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(flat)
        return
    title = f"by {bill.by}, {iso(bill.start)} .. {iso(bill.end)} (idle cost: {bill.idle_cost})"
    print_rows([_rounded(r) for r in flat], columns, as_json=False, title=title)
    used = [
        {
            "group": u.group,
            "nodes": u.nodes,
            "busy_h": u.busy_h,
            "awake_h": u.awake_h,
            "U_awake_pct": u.of_awake_pct,
            "U_total_pct": u.of_total_pct,
        }
        for u in bill.utilisation
    ]
    print_rows([_rounded(u) for u in used], list(used[0]) if used else [], as_json=False,
               title="utilisation: busy / awake and busy / total")  # fmt: skip


def show(result: Report, top: int, *, as_json: bool) -> None:
    jobs = sorted(result.jobs, key=lambda j: -(j.kwh or 0.0))[:top]
    if as_json:
        typer.echo(json.dumps(report_service.as_json(result, top), indent=2))
        return
    title = f"{iso(result.start)} .. {iso(result.end)}"
    print_rows(
        [_rounded(asdict(n)) for n in result.nodes], NODE_COLUMNS, as_json=False, title=title
    )
    if jobs:
        print_rows([_rounded(asdict(j)) for j in jobs], JOB_COLUMNS, as_json=False, title="jobs")
    t = result.totals
    console = Console()
    console.print(
        f"fleet: {t.kwh:.3f} kWh, cost {t.cost:.2f} (energy {t.energy_cost:.2f} + hardware "
        f"{t.hardware_cost:.2f} + fixed {t.fixed_cost:.2f}); "
        f"saved by sleeping {t.saved_kwh:.3f} kWh ({t.saved_cost:.2f}); "
        f"busy {t.busy_gpu_h:.2f} GPU-h, {t.busy_cpu_h:.2f} CPU-h"
        + (f"; {t.cpu_h_per_cost:.3f} CPU-h per unit of cost" if t.cpu_h_per_cost else "")
    )
    if t.co2_kg is not None:
        console.print(f"CO2: {t.co2_kg:.3f} kg")
    if t.saved_by_holds_cost or t.saved_by_holds_co2_kg:
        co2 = t.saved_by_holds_co2_kg
        console.print(
            f"jobs against starting each at submission: {t.saved_by_holds_cost:.2f} saved"
            + (f", {co2:.3f} kg CO2" if co2 is not None else "")
        )
    dl = result.deadlines
    if dl is not None and dl.jobs:
        by_gpu_h = f"{dl.hits_gpu_h_pct:.1f} %" if dl.hits_gpu_h_pct is not None else "-"
        console.print(
            f"deadlines: {dl.jobs} job(s) ended with one, {dl.hits_pct or 0:.1f} % met "
            f"({by_gpu_h} of their GPU-hours)"
        )
    for caveat in result.caveats:
        console.print(f"note: {caveat}", markup=False)
    if result.budget is not None:
        b = result.budget
        state = "OVER" if b.over else "within"
        console.print(
            f"budget ({b.period} from {iso(b.period_start)}): spent {b.spent:.2f} of "
            f"{b.limit:.2f}, projected {b.projected:.2f} at the period's end: {state}"
        )


def _rounded(row: Mapping[str, object]) -> dict[str, object]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
