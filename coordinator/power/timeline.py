"""The fleet over time, pure: what each node was doing (asleep, waking, failed, offline,
awake and busy or idle) from its power events and the jobs that ran on it, and from those
the fleet's nodes by state at each step, the power drawn where no sensor measured it, the
queued demand, and the energy used and saved in a window. The console's front page and its
node lanes read it; nothing here reads a raw sample, so a poll costs what changed.

A step's figures are time-weighted: a node asleep for half a 5-minute step counts 0.5 in
`asleep`, so a short sleep shows at any step. Power measured comes from the rollups (the
caller's); estimated covers what no sample says: an awake node without a sensor at the
idle power, every asleep node at the sleep power (a sleeping node sends nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from coordinator.power.energy import Interval, clip
from shared.units import J_PER_KWH

STATES = ("busy", "idle", "asleep", "waking", "failed", "offline")
AWAKE = "awake"  # before it is split into busy and idle by the jobs that ran
# a power event's kind -> the state it starts; other kinds (sleep asked, requests) change none
STARTS = {
    "asleep": "asleep",
    "wake": "waking",
    "resumed": AWAKE,
    "failed": "failed",  # a late resume leaves it failed until an operator clears it
}
STATE_KINDS = tuple(STARTS)
DRAWING = frozenset({"busy", "idle", "waking"})  # states that draw awake power


@dataclass(frozen=True, slots=True)
class Period:
    start: float
    end: float
    state: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeHistory:
    """One node's inputs for a window: its state when the window opens (from its last power
    event before it), its power events inside the window, and its jobs' runs."""

    node: str
    first_seen: float | None = None
    before: str = AWAKE  # a state of STARTS' values
    events: Sequence[tuple[float, str]] = ()  # (ts, kind), oldest first
    runs: Sequence[Interval] = ()  # its jobs' (start, end), an end of None's as the window's
    latest: tuple[float, str] | None = None  # the node row's (state_since, state): the truth
    measures_power: bool = False


@dataclass(frozen=True, slots=True)
class Window:
    start: float  # a multiple of `step_s`
    end: float
    step_s: float

    @property
    def steps(self) -> int:
        return max(0, int(np.ceil((self.end - self.start) / self.step_s)))

    @property
    def times(self) -> list[float]:
        return [self.start + i * self.step_s for i in range(self.steps)]

    @property
    def seconds(self) -> np.ndarray:
        """How much of each step has passed by `end`: the whole step but the last's part."""
        return np.clip(self.end - np.array(self.times), 0.0, self.step_s)

    @staticmethod
    def aligned(start: float, end: float, step_s: float) -> Window:
        """Steps on whole multiples of the step, as the rollups' buckets are."""
        return Window(start - start % step_s, end, step_s)


def periods(history: NodeHistory, start: float, end: float) -> list[Period]:
    """The node's states over [start, end], oldest first, adjacent ones of a state merged."""
    opened = max(start, history.first_seen or start)
    if opened >= end:
        return []
    power: list[Period] = []
    state, since = history.before, opened
    for ts, kind in history.events:
        new = STARTS.get(kind)
        if new is None or new == state or (new == "waking" and state == AWAKE):
            continue
        if ts <= opened:
            state = new
            continue
        if ts >= end:
            break
        power.append(Period(since, ts, state))
        state, since = new, ts
    power.append(Period(since, end, state))
    if history.latest is not None:  # it only adds to what the last event said
        power = _since(power, max(history.latest[0], since), history.latest[1])
    return _merge(_split_awake(power, clip(history.runs, opened, end)))


def _since(power: list[Period], since: float, state: str) -> list[Period]:
    """The node row's state from its `state_since` (or the last event) on: it knows what no
    event says (an agent gone offline without a sleep, a failed node an operator cleared)."""
    out = [p if p.end <= since else Period(p.start, since, p.state) for p in power]
    return [*out, Period(since, power[-1].end, state)] if since < power[-1].end else out


def _split_awake(power: list[Period], busy: list[Interval]) -> list[Period]:
    out: list[Period] = []
    for p in power:
        if p.state != AWAKE:
            out.append(p)
            continue
        cursor = p.start
        for a, b in clip(busy, p.start, p.end):
            if a > cursor:
                out.append(Period(cursor, a, "idle"))
            out.append(Period(a, b, "busy"))
            cursor = b
        if cursor < p.end:
            out.append(Period(cursor, p.end, "idle"))
    return out


def _merge(found: list[Period]) -> list[Period]:
    out: list[Period] = []
    for p in found:
        if p.end <= p.start:
            continue
        if out and out[-1].state == p.state and out[-1].end >= p.start:
            out[-1] = Period(out[-1].start, p.end, p.state)
        else:
            out.append(p)
    return out


def occupancy(spans: Iterable[tuple[float, float, float]], window: Window) -> np.ndarray:
    """Each step's time-weighted sum of `weight` over the (start, end, weight) spans: the
    mean at that step of how much was there (nodes, GPUs asked); the last step's mean is over
    the part of it that has passed. Through the integral F(t) = sum of weight x the span's
    time before t, at the steps' edges: O((spans + steps) log spans)."""
    found = np.array(list(spans), dtype=float).reshape(-1, 3)
    start = np.maximum(found[:, 0], window.start)
    end = np.minimum(found[:, 1], window.end)
    keep = end > start
    edges = np.minimum(window.start + np.arange(window.steps + 1) * window.step_s, window.end)
    integral = _integral(start[keep], found[keep, 2], edges) - _integral(
        end[keep], found[keep, 2], edges
    )
    return np.diff(integral) / np.maximum(window.seconds, 1e-9)


def _integral(at: np.ndarray, weight: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """sum over i with at[i] < t of weight[i] x (t - at[i]), for each t in `edges`."""
    order = np.argsort(at)
    at, weight = at[order], weight[order]
    w = np.concatenate(([0.0], np.cumsum(weight)))
    wa = np.concatenate(([0.0], np.cumsum(weight * at)))
    k = np.searchsorted(at, edges, side="left")
    return edges * w[k] - wa[k]


@dataclass(frozen=True, slots=True)
class Watts:
    idle_w: float  # an awake node that measures nothing (the configured idle power)
    sleep_w: float  # an asleep node


@dataclass(frozen=True, slots=True)
class Fleet:
    """The front page's figures, one value per step of `window`."""

    window: Window
    states: dict[str, np.ndarray]  # state -> nodes in it (time-weighted)
    estimated_w: np.ndarray
    measured_w: np.ndarray  # NaN: no node sent a power sample in that step
    demand: dict[str, np.ndarray]  # "gpus", "cpus": asked by jobs waiting in the queue
    used_kwh: float
    saved_kwh: float


def fleet(  # noqa: PLR0917 - the figures' sources
    lanes: dict[str, list[Period]],
    measuring: set[str],
    window: Window,
    measured_w: np.ndarray,
    waiting: Iterable[tuple[float, float, int, int]],
    watts: Watts,
) -> Fleet:
    """`lanes`: each node's periods; `waiting`: the queued jobs' (since, until, gpus, cpus)."""
    states = {s: occupancy(_spans(lanes, _in_state(s)), window) for s in STATES}
    unmeasured_awake = occupancy(
        _spans(lanes, lambda node, p: node not in measuring and p.state in DRAWING), window
    )
    estimated = unmeasured_awake * watts.idle_w + states["asleep"] * watts.sleep_w
    asks = list(waiting)
    demand = {
        "gpus": occupancy(((a, b, float(g)) for a, b, g, _ in asks), window),
        "cpus": occupancy(((a, b, float(c)) for a, b, _, c in asks), window),
    }
    seconds = window.seconds
    used_j = float(np.sum((np.nan_to_num(measured_w) + estimated) * seconds))
    saved_j = float(np.sum(states["asleep"] * seconds)) * max(0.0, watts.idle_w - watts.sleep_w)
    return Fleet(
        window, states, estimated, measured_w, demand, used_j / J_PER_KWH, saved_j / J_PER_KWH
    )


def _spans(
    lanes: dict[str, list[Period]], chosen: Callable[[str, Period], bool]
) -> Iterator[tuple[float, float, float]]:
    return ((p.start, p.end, 1.0) for node, ps in lanes.items() for p in ps if chosen(node, p))


def _in_state(state: str) -> Callable[[str, Period], bool]:
    return lambda _, period: period.state == state
