"""Budgets that act, pure: which thresholds an account crossed, and what its jobs get.

Spent is what chargeback charged an account this budget period (with `idle_cost = "shared"`
its part of the idle fleet too). Crossing 80 % and 100 % is an event once per threshold per
period (the store keeps which were said, so a restart or a new leader says nothing twice).
Past 100 %, `over_budget` decides: `warn` (nothing more), `hold` (the account's pending jobs
wait, with the reason on each; what runs is left alone), `deprioritise` (they are placed after
everyone else's).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from coordinator.core.jobstate import JobRecord
from coordinator.placement.model import Job

THRESHOLDS = (80, 100)
FLEET = ""  # the account of the fleet-wide `[cost] budget`
LAST = -(10**9)  # the priority a deprioritised job is placed with: after everyone's


@dataclass(frozen=True, slots=True)
class Standing:
    account: str
    spent: float
    budget: float
    period_start: float

    @property
    def pct(self) -> float:
        return 100 * self.spent / self.budget if self.budget else 0.0

    @property
    def over(self) -> bool:
        return self.budget > 0 and self.spent >= self.budget

    def crossed(self) -> list[int]:
        return [t for t in THRESHOLDS if self.budget > 0 and self.pct >= t]

    def reason(self) -> str:
        who = "the fleet" if self.account == FLEET else f"account {self.account}"
        figures = f"{self.spent:.2f} of its budget {self.budget:.2f} ({self.pct:.0f} %)"
        return f"{who} has spent {figures}"


def standings(
    spent: Mapping[str, float], budgets: Mapping[str, float], period_start: float
) -> list[Standing]:
    """One per account with a budget (an account that spent nothing stands at 0)."""
    return [
        Standing(name, spent.get(name, 0.0), limit, period_start)
        for name, limit in sorted(budgets.items())
        if limit > 0
    ]


def over_budget(found: list[Standing]) -> dict[str, str]:
    """Account -> why it is over (the fleet's own budget is not an account's)."""
    return {s.account: s.reason() for s in found if s.over and s.account != FLEET}


def placeable(
    pending: Collection[JobRecord], over: Mapping[str, str], policy: str, released: set[str]
) -> tuple[list[Job], dict[str, str]]:
    """What placement may take, and the jobs held for their account's budget (job id ->
    why; an operator's release passes one by). With `deprioritise`, an over-budget
    account's jobs come last: no deadline, the lowest priority (for this pass only)."""
    if policy == "warn":
        over = {}
    held = {
        j.id: over[j.account]
        for j in pending
        if j.account in over and policy == "hold" and j.id not in released
    }
    jobs = [
        dataclasses.replace(j.as_job(), deadline=None, priority=LAST)
        if j.account in over
        else j.as_job()
        for j in pending
        if j.id not in held
    ]
    return jobs, held
