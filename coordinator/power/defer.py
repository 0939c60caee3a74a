"""When to start a job with slack, pure: now, or in a cheaper (or cleaner) window.

A job is held only when some later start makes the mean price (or gCO2) over its runtime
at least `min_saving` lower than starting now, and only while its deadline still holds with
the learned wake margin to spare (the p95 wake time: the job may need a node woken at the
end of its hold) plus `keep_slack` of the slack it was given (for the queue it may meet).
Jobs without a deadline run at once unless `defer_undeadlined`; no hold is longer than
`max_defer`.

Holding is booked: a held job reserves its CPUs or GPUs in an hourly calendar for the
window it is held for, and a window is chosen only where what is booked and what is
running then (by the running jobs' expected ends) leave room for it within `fill` of the
fleet: the rest is left for jobs not yet submitted, which will not wait. Without that, every
job of the day would be released into the first cheap hour at once and the queue, not the
tariff, would decide who meets its deadline (on cluster01 with fill 1.0, deadline hits fell
by 13 points; with 0.5 by 0.13).

The cost of starting at s is the integral of the rate over [s, s + runtime]: piecewise
linear in s, so its minimum lies where s or s + runtime meets a change of the rate, or at
either end of the window; those are the only starts tried, cheapest first. The daemon and
the simulator hold jobs through the same `Holds`.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, replace

from coordinator.placement.model import ClusterSnapshot, Job, Power
from coordinator.power.tariff import Rate

BUCKET_S = 3600.0


SIZED_AT = 112  # GPUs (or CPUs) where the sized knobs are the old fixed 0.5 and 0.25
FILL_SPREAD = 0.5 * math.sqrt(SIZED_AT)  # fill = 1 - this / sqrt(units)
KEEP_SPREAD = 0.25 * math.sqrt(SIZED_AT)  # keep_slack = this / sqrt(units)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeferPolicy:
    """The knobs (meaning: coordinator.settings.Cost, docs/power.md). `keep_slack` and
    `fill` None: sized to the fleet (`sized`)."""

    by: str = "price"  # "price", "carbon" or "off"
    undeadlined: bool = False
    max_defer_s: float = 86_400.0
    min_saving: float = 0.03  # a fraction of the cost of starting now
    keep_slack: float | None = None  # of the slack (deadline - submit - runtime), kept
    fill: float | None = None  # holds book the fleet's CPUs/GPUs only up to this share

    def sized(self, units: int | None) -> DeferPolicy:
        """The knobs left to the fleet, for a fleet of `units` GPUs (CPUs without GPUs; None:
        not known, as for `dormouse submit`'s guess). What holds leave for work that will
        not wait (the fleet's share not bookable, the slack kept for the queue) absorbs how
        far that work strays from its mean, which grows as the square root of the fleet
        (square-root staffing): half the fleet and a quarter of the slack at 112 GPUs
        (14 8-GPU nodes; what the fixed defaults were), 78 % and 11 % at 560, 88 % and 6 %
        at 1,968. Measured in docs/benchmarks.md (issue 33)."""
        if self.keep_slack is not None and self.fill is not None:
            return self
        root = math.sqrt(max(units or SIZED_AT, 1))
        return replace(
            self,
            keep_slack=min(0.25, KEEP_SPREAD / root)
            if self.keep_slack is None
            else self.keep_slack,
            fill=min(0.9, max(0.25, 1 - FILL_SPREAD / root)) if self.fill is None else self.fill,
        )


@dataclass(frozen=True, slots=True)
class Hold:
    until: float
    reason: str
    lower_pct: float = 0.0  # the price (or carbon) over its run, this much lower then
    by: str = "price"  # or "carbon"

    def note(self) -> str:
        """As `dormouse jobs` shows a held job: `held until 23:00 UTC (cheaper by 31 %)`."""
        hhmm = time.strftime("%H:%M", time.gmtime(self.until))
        better = "cleaner" if self.by == "carbon" else "cheaper"
        return f"held until {hhmm} UTC ({better} by {self.lower_pct:.0f} %)"


@dataclass(frozen=True, slots=True)
class Fleet:
    """What the fleet can hold (nodes that are or can be awake) and what runs on it:
    `running` is (expected end, cpus, gpus) of each placed or running job."""

    cpus: int
    gpus: int
    running: Sequence[tuple[float, int, int]] = ()


def fleet_of(cluster: ClusterSnapshot) -> Fleet:
    """What holds are booked against: the nodes awake or able to wake, and the jobs on them."""
    usable = [n for n in cluster.nodes if n.power is not Power.UNAVAILABLE]
    running = [(a.ends_at or 0.0, a.cpus, len(a.gpus)) for a in cluster.allocations]
    return Fleet(sum(n.cpus for n in usable), sum(len(n.gpus) for n in usable), running)


def latest_start(job: Job, now: float, margin_s: float, policy: DeferPolicy) -> float | None:
    """The last start the job may be held to, or None when it may not be held at all."""
    if job.deadline is None and not policy.undeadlined:
        return None
    latest = now + policy.max_defer_s
    if job.deadline is not None:
        slack = job.deadline - job.submitted_at - job.runtime_s
        keep = policy.sized(None).keep_slack or 0.0  # sized(None) keeps a set value
        latest = min(latest, job.deadline - job.runtime_s - margin_s - keep * slack)
    return latest if latest > now else None


def candidate_starts(rate: Rate, now: float, latest: float, runtime: float) -> list[float]:
    """Where the cost of starting can be least: the ends, where the run's start or end meets a
    change of the rate, and each hour (where bookings begin and end)."""
    hours = range(math.floor(now / BUCKET_S) + 1, math.ceil(latest / BUCKET_S))
    starts = {now, latest, *rate.changes(now, latest), *(h * BUCKET_S for h in hours)}
    starts |= {t - runtime for t in rate.changes(now + runtime, latest + runtime)}
    return sorted(starts)


def cheapest_start(rate: Rate, earliest: float, latest: float, runtime: float) -> float:
    """The start in [earliest, latest] where the run costs least (ties: the earliest)."""
    starts = candidate_starts(rate, earliest, max(earliest, latest), runtime)
    return min(starts, key=lambda s: (round(rate.integral(s, s + runtime), 9), s))


class Calendar:
    """CPUs and GPUs booked by held jobs, per hour."""

    def __init__(self) -> None:
        self._booked: dict[int, list[int]] = defaultdict(lambda: [0, 0])

    def book(self, start: float, runtime: float, job: Job, sign: int = 1) -> None:
        for bucket in _buckets(start, runtime):
            booked = self._booked[bucket]
            booked[0] += sign * job.request.cpus
            booked[1] += sign * job.request.gpus
            if booked == [0, 0]:
                del self._booked[bucket]

    def fits(self, start: float, runtime: float, job: Job, fleet: Running, fill: float) -> bool:
        want = job.request
        for bucket in _buckets(start, runtime):
            cpus, gpus = self._booked.get(bucket, (0, 0))
            run_cpus, run_gpus = fleet.at(bucket * BUCKET_S)
            if want.gpus and gpus + run_gpus + want.gpus > fill * fleet.fleet.gpus:
                return False
            if cpus + run_cpus + want.cpus > fill * fleet.fleet.cpus:
                return False
        return True


class Running:
    """What runs at a time, from the running jobs' expected ends."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        ordered = sorted(fleet.running)
        self._ends = [end for end, _, _ in ordered]
        self._after: list[tuple[int, int]] = [(0, 0)] * (len(ordered) + 1)
        for i in range(len(ordered) - 1, -1, -1):
            cpus, gpus = self._after[i + 1]
            self._after[i] = (cpus + ordered[i][1], gpus + ordered[i][2])

    def at(self, t: float) -> tuple[int, int]:
        return self._after[bisect.bisect_right(self._ends, t)]


def _buckets(start: float, runtime: float) -> range:
    return range(math.floor(start / BUCKET_S), math.ceil((start + runtime) / BUCKET_S))


class Holds:
    """Jobs held for a better window. Each job's start is planned once, when first seen (the
    window only shrinks as time passes), and it is released when due, or earlier if the
    wake margin has grown past what the hold allowed."""

    def __init__(self, rate: Rate | None, policy: DeferPolicy) -> None:
        self.rate, self.policy = rate, policy
        self._planned: dict[str, Hold | None] = {}
        self._jobs: dict[str, Job] = {}
        self._calendar = Calendar()
        self.planned = 0  # jobs ever held

    @property
    def active(self) -> bool:
        return can_hold(self.rate, self.policy)

    def split(
        self,
        jobs: Iterable[Job],
        now: float,
        margin_s: float,
        fleet: Callable[[], Fleet],
        released: Collection[str] = (),
    ) -> tuple[list[Job], dict[str, Hold]]:
        """The jobs to place now, and those held (with their holds). `fleet` is asked only
        when a job is seen for the first time; a job in `released` (`dormouse jobs release`)
        is never held again."""
        if not self.active:
            return list(jobs), {}
        ready: list[Job] = []
        held: dict[str, Hold] = {}
        running: Running | None = None
        for job in jobs:
            if job.id in released:
                self._release(job.id)
                ready.append(job)
                continue
            if job.id not in self._planned:
                running = running or Running(fleet())
                self._plan(job, now, margin_s, running)
            hold = self._planned[job.id]
            if hold is not None and now < hold.until and _still_holds(job, hold, margin_s):
                held[job.id] = hold
            else:
                self._release(job.id)
                ready.append(job)
        return ready, held

    def _plan(self, job: Job, now: float, margin_s: float, running: Running) -> None:
        hold = plan_start(
            job, self.rate, now, margin_s, self.policy, booked=(self._calendar, running)
        )
        self._planned[job.id] = hold
        if hold is not None:
            self.planned += 1
            self._jobs[job.id] = job
            self._calendar.book(hold.until, job.runtime_s, job)

    def _release(self, job_id: str) -> None:
        hold = self._planned.get(job_id)
        if hold is not None:
            self._calendar.book(hold.until, self._jobs[job_id].runtime_s, self._jobs[job_id], -1)
            del self._jobs[job_id]
        self._planned[job_id] = None

    def keep_only(self, job_ids: set[str]) -> None:
        """Forget jobs no longer pending (placed, cancelled)."""
        for gone in self._planned.keys() - job_ids:
            self.forget(gone)

    def forget(self, job_id: str) -> None:
        if job_id in self._planned:
            self._release(job_id)
            del self._planned[job_id]


def can_hold(rate: Rate | None, policy: DeferPolicy) -> bool:
    """Holding can gain anything: a rate that changes, and holds not switched off."""
    return rate is not None and policy.by != "off" and not rate.is_flat


def plan_start(
    job: Job,
    rate: Rate | None,
    now: float,
    margin_s: float,
    policy: DeferPolicy,
    *,
    booked: tuple[Calendar, Running] | None = None,
) -> Hold | None:
    """A later start worth waiting for (the cheapest with room booked), or None: now."""
    if rate is None or not can_hold(rate, policy) or job.runtime_s <= 0:
        return None
    fill = 1.0  # without bookings (`dormouse submit`'s guess) room is not checked
    if booked is not None:
        fleet = booked[1].fleet
        policy = policy.sized(fleet.gpus or fleet.cpus)
        fill = 1.0 if policy.fill is None else policy.fill  # sized: never None; 0.0 holds
    latest = latest_start(job, now, margin_s, policy)
    runtime = job.runtime_s
    now_cost = rate.integral(now, now + runtime)
    if latest is None or now_cost <= 0:
        return None
    enough = now_cost * (1 - policy.min_saving)
    starts = candidate_starts(rate, now, latest, runtime)
    costs = sorted((round(rate.integral(s, s + runtime), 9), s) for s in starts)  # ties: earliest
    for cost, start in costs:
        if cost > enough:
            return None
        if booked is None or booked[0].fits(start, runtime, job, booked[1], fill):
            lower = 100 * (1 - cost / now_cost)
            return Hold(start, _reason(policy, lower, job, margin_s), lower, policy.by)
    return None


def _reason(policy: DeferPolicy, lower_pct: float, job: Job, margin_s: float) -> str:
    what = "gCO2/kWh" if policy.by == "carbon" else "price"
    reason = f"the {what} over its run is {lower_pct:.0f}% lower then"
    if job.deadline is not None:
        reason += f"; the deadline holds with {margin_s:.0f}s for a wake"
    return reason


def _still_holds(job: Job, hold: Hold, margin_s: float) -> bool:
    return job.deadline is None or hold.until + job.runtime_s + margin_s <= job.deadline
