"""`dormouse report`: energy, cost and utilisation per node, per job and for the fleet."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console

from coordinator.cli.common import DbOption, JsonOption, fail, load, positive_duration
from coordinator.daemon.main import open_store
from coordinator.power.report import CostModel, Report, budget, period_bounds, report
from coordinator.services.history import iso
from coordinator.settings import CoordinatorConfig
from coordinator.store.usage import load_usage
from shared.edge.config_cli import ConfigOption
from shared.edge.console import print_rows, reported_errors

OVER_BUDGET = 4
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
JOB_COLUMNS = ["id", "name", "node", "share", "kwh", "cost", "gpu_h", "cpu_h"]


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)


def report_command(
    since: Annotated[str, typer.Option("--since", help="how far back, e.g. 24h, 7d")] = "7d",
    price_kwh: Annotated[
        float | None, typer.Option("--price-kwh", help="energy price (default: [cost] price_kwh)")
    ] = None,
    check_budget: Annotated[
        bool, typer.Option("--check-budget", help=f"exit {OVER_BUDGET} when over the budget")
    ] = False,
    top: Annotated[int, typer.Option("--jobs", help="jobs listed, by energy")] = 20,
    config: ConfigOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """kWh, cost, awake/asleep hours, utilisation and energy saved by sleeping."""
    window = positive_duration(since, "--since")
    if price_kwh is not None and price_kwh < 0:
        fail("--price-kwh must be 0 or more")
    settings = load(config, db=db)
    if check_budget and not settings.cost.budget:
        fail("--check-budget: no budget configured ([cost] budget)")
    now = time.time()
    model = cost_model(settings, price_kwh)
    first = period_bounds(settings.cost.budget_period, now)[0]
    with reported_errors("dormouse"):
        engine = open_store(settings, migrate_empty=False)
    with engine.connect() as conn:
        usage = load_usage(conn, min(now - window, first), now)
    result = report(usage, model, now - window, now)
    if settings.cost.budget:
        spent = budget(usage, model, settings.cost.budget, settings.cost.budget_period, now)
        result = Report(result.start, result.end, result.nodes, result.jobs, result.totals, spent)
    show(result, top, as_json=as_json)
    if check_budget and result.budget is not None and result.budget.over:
        raise typer.Exit(OVER_BUDGET)


def cost_model(settings: CoordinatorConfig, price_kwh: float | None) -> CostModel:
    cost = settings.cost
    return CostModel(
        price_kwh=cost.price_kwh if price_kwh is None else price_kwh,
        fixed_per_hour=lambda node: cost.fixed_per_hour.get(node, cost.fixed_per_node_hour),
        sleep_power_w=cost.sleep_power_w,
        idle_power_w=cost.idle_power_w,
        max_gap_s=settings.offline_after,
    )


def show(result: Report, top: int, *, as_json: bool) -> None:
    jobs = sorted(result.jobs, key=lambda j: -(j.kwh or 0.0))[:top]
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "start": result.start,
                    "end": result.end,
                    "nodes": [asdict(n) for n in result.nodes],
                    "jobs": [asdict(j) for j in jobs],
                    "totals": asdict(result.totals),
                    "budget": _budget_json(result),
                },
                indent=2,
            )
        )
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
        f"fleet: {t.kwh:.3f} kWh, cost {t.cost:.2f} (energy {t.energy_cost:.2f} + fixed "
        f"{t.fixed_cost:.2f}); saved by sleeping {t.saved_kwh:.3f} kWh ({t.saved_cost:.2f}); "
        f"busy {t.busy_gpu_h:.2f} GPU-h, {t.busy_cpu_h:.2f} CPU-h"
        + (f"; {t.cpu_h_per_cost:.3f} CPU-h per unit of cost" if t.cpu_h_per_cost else "")
    )
    if result.budget is not None:
        b = result.budget
        state = "OVER" if b.over else "within"
        console.print(
            f"budget ({b.period} from {iso(b.period_start)}): spent {b.spent:.2f} of "
            f"{b.limit:.2f}, projected {b.projected:.2f} at the period's end: {state}"
        )


def _budget_json(result: Report) -> dict[str, object] | None:
    if result.budget is None:
        return None
    return {**asdict(result.budget), "over": result.budget.over}


def _rounded(row: dict[str, object]) -> dict[str, object]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
