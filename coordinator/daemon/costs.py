"""Cost control on the leader: GPUs held idle are flagged as it happens, and budgets act
(the rules are `power.waste` and `power.budgets`, pure; this reads the live registry and the
store and writes what they decide).

Waste, at every jobs pass: a running job past `waste_after` under `waste_util_pct` gets a job
event and a power-event-log line once (`jobs.wasteful_at`), and is cancelled with
`waste_action = "cancel"`. Budgets, every `budget_check`: what each account spent this period
(`dormouse report --by account`'s figures), an event and a log line once per threshold per
period (the `budget_events` table remembers across restarts and leaders), and the accounts
over budget, which `over_budget` then holds or places last.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Collection, Iterable

import sqlalchemy as sa

from coordinator.core import jobstate
from coordinator.core.jobstate import JobRecord, JobState
from coordinator.core.registry import Registry
from coordinator.placement.model import Job
from coordinator.power import budgets as budget_rules
from coordinator.power.budgets import FLEET, Standing
from coordinator.power.report import period_bounds
from coordinator.power.waste import GpuReading, Held, Waste, WasteWatch, wasted_gpus
from coordinator.services import report as report_service
from coordinator.settings import CoordinatorConfig
from coordinator.store import jobs as job_rows
from coordinator.store import power as power_rows
from coordinator.store.dialect import upsert
from coordinator.store.models import budget_events
from coordinator.store.power import PowerEvent

log = logging.getLogger(__name__)


class CostWatch:
    def __init__(self, engine: sa.Engine, config: CoordinatorConfig, registry: Registry) -> None:
        self._engine, self._config, self._registry = engine, config, registry
        cost = config.cost
        self._watch = WasteWatch(cost.waste_util_pct, cost.waste_after)
        self._flagged: set[str] = set()  # flagged by this process (the row says it too)
        self._next_budget = 0.0
        self.wasted: dict[str, int] = {}  # account -> GPUs held idle now (`/metrics`)
        self.standings: list[Standing] = []  # `/metrics`: spent and budget per account
        self.over: dict[str, str] = {}  # account -> why it is over budget

    async def waste(self, active: list[JobRecord], now: float) -> None:
        running = [j for j in active if j.state is JobState.RUNNING and j.gpu_indices]
        held = [Held(j.id, j.account, j.node or "", j.gpu_indices) for j in running]
        found = self._watch.observe(held, self._readings({h.node for h in held}), now)
        self.wasted = wasted_gpus(found)
        records = {j.id: j for j in running}
        for waste in found:
            job = records[waste.job_id]
            if job.wasteful_at is None and waste.job_id not in self._flagged:
                self._flagged.add(waste.job_id)
                await asyncio.to_thread(self._flag, job, waste, now)
        self._flagged &= records.keys()

    def _readings(self, nodes: Iterable[str]) -> dict[str, GpuReading]:
        found = {}
        for name in nodes:
            view = self._registry.nodes.get(name)
            utils = view.latest.get("gpu_utils") if view is not None else None
            if view is not None and utils and view.latest.get("ts") is not None:
                by_index = {int(i): float(u) for i, u in utils.items()}
                found[name] = GpuReading(float(view.latest["ts"]), by_index)
        return found

    def _flag(self, job: JobRecord, waste: Waste, now: float) -> None:
        note = waste.note(now)
        cancel = self._config.cost.waste_action == "cancel"
        with self._engine.begin() as conn:
            if not job_rows.flag_wasteful(conn, job.id, now, note):
                return
            reason = f"job {job.id} holds {note}"
            event = PowerEvent(now, waste.node, "waste", reason, float(waste.gpus))
            power_rows.log_events(conn, [event])
            change = jobstate.cancel(job, now) if cancel else None
            if change is not None:
                job_rows.apply(conn, job, dataclasses.replace(change, detail="wasteful"), now)
        log.warning("wasteful: job %s holds %s%s", job.id, note, "; cancelled" * cancel)

    async def budgets(self, now: float) -> None:
        """Every `budget_check`: who spent what this period, and the thresholds crossed."""
        cost = self._config.cost
        if not (cost.accounts or cost.budget) or now < self._next_budget:
            return
        self._next_budget = now + cost.budget_check
        self.standings = await asyncio.to_thread(self._standings, now)
        self.over = budget_rules.over_budget(self.standings)

    def _standings(self, now: float) -> list[Standing]:
        cost = self._config.cost
        first, _ = period_bounds(cost.budget_period, now)
        bill = report_service.charged(
            self._engine, self._config, "account", window_s=max(now - first, 1.0), now=now
        )
        spent = {r.key: r.cost.total for r in bill.rows}
        spent[FLEET] = sum(r.cost.total for r in bill.rows)
        limits = cost.budgets() | ({FLEET: cost.budget} if cost.budget else {})
        found = budget_rules.standings(spent, limits, first)
        with self._engine.begin() as conn:
            for standing in found:
                for threshold in standing.crossed():
                    if _said_once(conn, standing, threshold, now):
                        log.warning("budget: %s (%d %% crossed)", standing.reason(), threshold)
        return found

    def placeable(
        self, pending: Collection[JobRecord], released: set[str]
    ) -> tuple[list[Job], dict[str, str]]:
        """`power.budgets.placeable` with this leader's standings and policy."""
        return budget_rules.placeable(pending, self.over, self._config.cost.over_budget, released)


def _said_once(conn: sa.Connection, standing: Standing, threshold: int, now: float) -> bool:
    """Record the crossing; False when this period's was recorded already."""
    row = {
        "account": standing.account,
        "period_start": standing.period_start,
        "threshold_pct": threshold,
        "ts": now,
        "spent": standing.spent,
        "budget": standing.budget,
    }
    return bool(conn.execute(upsert(conn, budget_events).on_conflict_do_nothing(), [row]).rowcount)
