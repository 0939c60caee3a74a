"""The fleet over time (`GET /api/v1/fleet/timeline`, the console's front page): the store's
power events, job runs and queue read for a window, the fleet's power from the rollups, and
`power.timeline` to make them nodes by state, power measured and estimated, demand, energy
and one lane per node."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import sqlalchemy as sa

from coordinator.core.series import FleetQuery
from coordinator.power import timeline
from coordinator.power.timeline import AWAKE, STARTS, NodeHistory, Period, Watts, Window
from coordinator.services import history
from coordinator.settings import CoordinatorConfig
from coordinator.store import timeline as rows
from shared.metrics import BY_NAME

ROW_STATES = {  # a node row's state -> its state on the timeline
    "online": AWAKE,
    "sleeping": AWAKE,  # asked to sleep, still drawing awake power until it goes quiet
    "asleep": "asleep",
    "waking": "waking",
    "failed": "failed",
    "offline": "offline",
}
MAX_STEPS = 2000  # a window's steps: 7 d at 5 min


def fleet_timeline(  # noqa: PLR0917 - the window and what it keeps
    engine: sa.Engine,
    settings: CoordinatorConfig,
    since: float,
    step_s: float,
    now: float,
    power: MeasuredPower | None = None,
) -> dict[str, Any]:
    """The window [since, now] in steps of `step_s` (60 s or more); `power`: what the
    previous poll of this window read from the rollups, reused."""
    window = Window.aligned(since, now, step_s)
    with engine.connect() as conn:
        known = rows.nodes(conn)
        before = rows.last_kinds(conn, window.start)
        events = rows.events(conn, window.start, now)
        runs = rows.runs(conn, window.start, now)
        waiting = rows.waiting(conn, window.start, now)
    measured, measuring, tier = (power or MeasuredPower()).read(engine, settings, window, now)
    by_node: dict[str, list[rows.Run]] = defaultdict(list)
    for run in runs:
        by_node[run.node].append(run)
    lanes = {
        name: timeline.periods(
            NodeHistory(
                node=name,
                first_seen=first_seen,
                before=STARTS.get(before.get(name, ""), AWAKE),
                events=[(ts, kind) for ts, kind, _ in events.get(name, ())],
                runs=[(r.start, now if r.end is None else r.end) for r in by_node[name]],
                latest=(state_since, ROW_STATES.get(state, AWAKE)),
            ),
            window.start,
            now,
        )
        for name, first_seen, state, state_since in known
    }
    cost = settings.cost
    figures = timeline.fleet(
        lanes,
        measuring,
        window,
        measured,
        ((t0, now if t1 is None else t1, g, c) for t0, t1, g, c in waiting),
        Watts(idle_w=cost.idle_power_w, sleep_w=cost.sleep_power_w),
    )
    return {
        "start": window.start,
        "end": now,
        "step_s": step_s,
        "tier": tier,
        "times": window.times,
        "states": {s: _rounded(v) for s, v in figures.states.items()},
        "power_w": {
            "measured": _rounded(figures.measured_w, 1),
            "estimated": _rounded(_until_measured(figures.estimated_w, figures.measured_w), 1),
        },
        "demand": {k: _rounded(v) for k, v in figures.demand.items()},
        "energy": {
            "used_kwh": round(figures.used_kwh, 3),
            "saved_kwh": round(figures.saved_kwh, 3),
            "idle_power_w": cost.idle_power_w,
            "sleep_power_w": cost.sleep_power_w,
        },
        "measuring": len(measuring),
        "lanes": [
            _lane(name, lanes[name], by_node[name], events.get(name, ())) for name, *_ in known
        ],
    }


class MeasuredPower:
    """The fleet's measured power per step for one window size, kept between polls: a poll
    reads the rollups from `REREAD_STEPS` steps before its newest step on (minutes rolled
    up late), and the whole window only every `full_every_s`, so a poll costs the minutes
    that changed, not the window's (a week of a thousand nodes is 168,000 rows)."""

    REREAD_STEPS = 2

    def __init__(self, full_every_s: float = 600.0) -> None:
        self.full_every_s = full_every_s
        self._values: dict[float, float] = {}  # step start -> watts
        self._seen: dict[str, float] = {}  # node -> its newest step with a power sample
        self._full_at = -float("inf")

    def read(
        self, engine: sa.Engine, settings: CoordinatorConfig, window: Window, now: float
    ) -> tuple[np.ndarray, set[str], str]:
        """(watts per step, NaN where no sample; the nodes that sent one; the tier read)."""
        full = now - self._full_at >= self.full_every_s
        newest = max(self._values, default=window.start)  # the newest step with a value
        since = window.start if full else max(
            window.start, newest - self.REREAD_STEPS * window.step_s
        )  # fmt: skip
        tier = history.choose_tier(window.step_s, window.start, now, settings.retention)
        query = FleetQuery(BY_NAME["power_w"], since, now, window.step_s, "sum")
        try:
            answer = history.grouped(engine, query, "node", None, {}, settings.retention, now)
        except history.NoNodes:
            answer = {"series": [], "tier": tier}
        if full:
            self._values, self._seen, self._full_at = {}, {}, now
        self._values = {t: v for t, v in self._values.items() if window.start <= t < since}
        found: list[dict[str, Any]] = answer["series"]  # type: ignore[assignment]
        for series in found:
            for ts, value in series["points"]:
                self._values[ts] = self._values.get(ts, 0.0) + value
                self._seen[series["group"]["node"]] = max(
                    ts, self._seen.get(series["group"]["node"], ts)
                )
        self._seen = {n: t for n, t in self._seen.items() if t >= window.start}
        total = np.array([self._values.get(t, np.nan) for t in window.times])
        return total, set(self._seen), tier


def _until_measured(estimated: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """The estimate stops where the measured power does (its newest minutes are not rolled
    up yet): the chart's total would dip there for no reason."""
    known = np.flatnonzero(~np.isnan(measured))
    if not len(known):
        return estimated
    return np.where(np.arange(len(estimated)) > known[-1], np.nan, estimated)


def _rounded(values: np.ndarray, digits: int = 3) -> list[float | None]:
    return [None if np.isnan(v) else round(float(v), digits) for v in values]


def _lane(node: str, periods: list[Period], runs: list[rows.Run], events: Any) -> dict[str, Any]:
    return {
        "node": node,
        "periods": [[p.start, p.end, p.state] for p in periods],
        "jobs": [[r.job_id, r.name, r.start, r.end, r.state] for r in runs],
        "events": [[ts, kind, reason] for ts, kind, reason in events],
    }
