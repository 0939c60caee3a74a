"""`dormouse report`: energy, cost and utilisation from what the store holds, priced by the
configured cost model (the maths is `power.report`, pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import sqlalchemy as sa

from coordinator.power import chargeback
from coordinator.power.report import (
    CostModel,
    Report,
    budget,
    deadline_hits,
    period_bounds,
    report,
)
from coordinator.power.tariff import PRICE
from coordinator.services import tariffs
from coordinator.settings import CoordinatorConfig
from coordinator.store import jobs as job_rows
from coordinator.store.usage import JobColumns, load_job_columns, load_usage


def cost_model(
    settings: CoordinatorConfig,
    price_kwh: float | None = None,
    labels: Mapping[str, dict[str, str]] | None = None,
) -> CostModel:
    """`price_kwh` (the CLI's --price-kwh) prices every hour alike, over `[cost] tariff`;
    tables are read in this host's local time. `labels` (node -> its labels) picks each
    node's `[cost.types]`."""
    cost = settings.cost
    tariff = None if price_kwh is not None else tariffs.read_rate(cost.tariff, PRICE, "tariff")
    known = labels or {}
    return CostModel(
        price_kwh=cost.price_kwh if price_kwh is None else price_kwh,
        tariff=tariffs.on_local_clock(tariff),
        carbon=tariffs.on_local_clock(tariffs.carbon(cost)),
        fixed_per_hour=lambda node: cost.fixed_rate(node, known.get(node, {})),
        hardware_per_hour=lambda node: cost.hardware_rate(node, known.get(node, {})),
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
    first = now - window_s
    if settings.cost.budget:  # the budget's period is read only when there is a budget
        first = min(first, period_bounds(settings.cost.budget_period, now)[0])
    with engine.connect() as conn:
        usage = load_usage(conn, first, now)
        ended = job_rows.deadline_outcomes(conn, now - window_s, now)
    model = cost_model(settings, price_kwh, {n.name: dict(n.labels) for n in usage})
    result = replace(report(usage, model, now - window_s, now), deadlines=deadline_hits(ended))
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
        "deadlines": asdict(result.deadlines) if result.deadlines else None,
        "caveats": list(result.caveats),
    }


@dataclass(frozen=True, slots=True)
class Chargeback:
    start: float
    end: float
    by: str
    rows: list[chargeback.Row]
    utilisation: list[chargeback.Utilisation]
    idle_cost: str


def charged(
    engine: sa.Engine,
    settings: CoordinatorConfig,
    by: str,
    *,
    window_s: float,
    now: float,
    price_kwh: float | None = None,
) -> Chargeback:
    """`dormouse report --by account|user|node|job`: who spent what, from the rollups and
    the jobs' own figures."""
    start = now - window_s
    with engine.connect() as conn:
        columns = load_job_columns(conn, start, now, by)
        usage = load_usage(conn, start, now, jobs=False, power=False, also=set(columns.nodes))
    labels = {n.name: dict(n.labels) for n in usage}
    model = cost_model(settings, price_kwh, labels)
    fleet = chargeback.fleet_of(usage, model, start, now)
    jobs = _numbered(columns, fleet.names, now)
    charges = chargeback.charge(jobs, fleet, model, start, now)
    rows = chargeback.rows(jobs, charges, columns.keys, fleet, settings.cost.idle_cost)
    busy = chargeback.busy_h(jobs, fleet, start, now)
    used = chargeback.utilisation(fleet, busy, labels)
    return Chargeback(start, now, by, rows, used, settings.cost.idle_cost)


def _numbered(columns: JobColumns, names: list[str], end: float) -> chargeback.Jobs:
    index = {name: i for i, name in enumerate(names)}
    started, finished, energy, gpus, cpus, util = columns.values.T
    return chargeback.Jobs(
        node=np.array([index[n] for n in columns.nodes], np.int64),
        start=started,
        end=np.where(np.isnan(finished), end, finished),
        energy_j=energy,
        gpus=gpus,
        cpus=cpus,
        util_pct=util,
    )


def chargeback_json(result: Chargeback) -> dict[str, Any]:
    """What `dormouse report --by account --json` prints and `GET /api/v1/report?by=account`
    answers."""
    return {
        "start": result.start,
        "end": result.end,
        "by": result.by,
        "idle_cost": result.idle_cost,
        "rows": [chargeback.as_json(r, result.by) for r in result.rows],
        "utilisation": [
            {
                "group": u.group,
                "nodes": u.nodes,
                "busy_h": u.busy_h,
                "awake_h": u.awake_h,
                "total_h": u.total_h,
                "u_awake_pct": u.of_awake_pct,
                "u_total_pct": u.of_total_pct,
            }
            for u in result.utilisation
        ],
    }
