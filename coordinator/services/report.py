"""`dormouse report`: energy, cost and utilisation from what the store holds, priced by the
configured cost model (the maths is `power.report`, pure)."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import sqlalchemy as sa

from coordinator.power.report import CostModel, Report, budget, period_bounds, report
from coordinator.power.tariff import PRICE
from coordinator.services import tariffs
from coordinator.settings import CoordinatorConfig
from coordinator.store.usage import load_usage


def cost_model(settings: CoordinatorConfig, price_kwh: float | None = None) -> CostModel:
    """`price_kwh` (the CLI's --price-kwh) prices every hour alike, over `[cost] tariff`;
    tables are read in this host's local time."""
    cost = settings.cost
    tariff = None if price_kwh is not None else tariffs.read_rate(cost.tariff, PRICE, "tariff")
    return CostModel(
        price_kwh=cost.price_kwh if price_kwh is None else price_kwh,
        tariff=tariffs.on_local_clock(tariff),
        carbon=tariffs.on_local_clock(tariffs.carbon(cost)),
        fixed_per_hour=lambda node: cost.fixed_per_hour.get(node, cost.fixed_per_node_hour),
        sleep_power_w=cost.sleep_power_w,
        idle_power_w=cost.idle_power_w,
        max_gap_s=settings.offline_after,
    )


def build(
    engine: sa.Engine,
    settings: CoordinatorConfig,
    *,
    window_s: float,
    now: float,
    price_kwh: float | None = None,
) -> Report:
    """The report of the last `window_s`, with the budget's period when one is configured."""
    model = cost_model(settings, price_kwh)
    first = now - window_s
    if settings.cost.budget:  # the budget's period is read only when there is a budget
        first = min(first, period_bounds(settings.cost.budget_period, now)[0])
    with engine.connect() as conn:
        usage = load_usage(conn, first, now)
    result = report(usage, model, now - window_s, now)
    if settings.cost.budget:
        spent = budget(usage, model, settings.cost.budget, settings.cost.budget_period, now)
        result = replace(result, budget=spent)
    return result


def as_json(result: Report, top: int) -> dict[str, Any]:
    """What `dormouse report --json` prints and `GET /api/v1/report` answers: the `top` jobs
    by energy."""
    jobs = sorted(result.jobs, key=lambda j: -(j.kwh or 0.0))[:top]
    spent = None if result.budget is None else asdict(result.budget) | {"over": result.budget.over}
    return {
        "start": result.start,
        "end": result.end,
        "nodes": [asdict(n) for n in result.nodes],
        "jobs": [asdict(j) for j in jobs],
        "totals": asdict(result.totals),
        "budget": spent,
        "caveats": list(result.caveats),
    }
