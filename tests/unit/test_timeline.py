"""The fleet over time, by hand: a node's periods from its power events, jobs and row; the
time-weighted counts per step; estimated power; demand; energy used and saved."""

from __future__ import annotations

import math

import numpy as np
import pytest

from coordinator.power.timeline import NodeHistory, Period, Watts, Window, fleet, occupancy, periods

MIN = 60.0


def test_a_five_minute_sleep_between_two_jobs():
    history = NodeHistory(
        node="a",
        events=[(600.0, "sleep"), (630.0, "asleep"), (930.0, "wake"), (960.0, "resumed")],
        runs=[(0.0, 300.0), (1000.0, 1200.0)],
    )
    assert periods(history, 0.0, 1800.0) == [
        Period(0.0, 300.0, "busy"),
        Period(300.0, 630.0, "idle"),  # `sleep` asked: still awake until it went quiet
        Period(630.0, 930.0, "asleep"),
        Period(930.0, 960.0, "waking"),
        Period(960.0, 1000.0, "idle"),
        Period(1000.0, 1200.0, "busy"),
        Period(1200.0, 1800.0, "idle"),
    ]


def test_the_state_before_the_window_first_seen_and_the_row_win():
    asleep = NodeHistory(node="b", before="asleep", events=[(120.0, "wake"), (150.0, "failed")])
    assert periods(asleep, 0.0, 600.0) == [
        Period(0.0, 120.0, "asleep"),
        Period(120.0, 150.0, "waking"),
        Period(150.0, 600.0, "failed"),
    ]
    cleared = NodeHistory(node="b", before="failed", latest=(300.0, "awake"))
    assert periods(cleared, 0.0, 600.0) == [
        Period(0.0, 300.0, "failed"),  # an operator cleared it: no event says so, the row does
        Period(300.0, 600.0, "idle"),
    ]
    gone = NodeHistory(node="c", latest=(400.0, "offline"), first_seen=100.0)
    assert periods(gone, 0.0, 600.0) == [
        Period(100.0, 400.0, "idle"),
        Period(400.0, 600.0, "offline"),
    ]
    assert periods(NodeHistory(node="d", first_seen=700.0), 0.0, 600.0) == []


def test_a_wake_for_an_awake_node_and_an_unknown_kind_change_nothing():
    history = NodeHistory(node="a", events=[(10.0, "wake"), (20.0, "request_sleep")])
    assert periods(history, 0.0, 60.0) == [Period(0.0, 60.0, "idle")]


def test_occupancy_is_time_weighted_per_step():
    window = Window(0.0, 600.0, 300.0)
    got = occupancy([(150.0, 450.0, 1.0), (0.0, 600.0, 2.0)], window)
    assert got.tolist() == [2.5, 2.5]


def test_fleet_counts_estimates_demand_and_energy():
    window = Window(0.0, 600.0, 300.0)
    lanes = {
        "m": [Period(0.0, 600.0, "busy")],  # measures its power
        "u": [Period(0.0, 300.0, "idle"), Period(300.0, 600.0, "asleep")],  # measures none
    }
    measured = np.array([400.0, np.nan])  # no rollup yet for the second step
    got = fleet(lanes, {"m"}, window, measured, [(100.0, 400.0, 4, 8)], Watts(100.0, 5.0))
    assert got.states["busy"].tolist() == [1.0, 1.0]
    assert got.states["idle"].tolist() == [1.0, 0.0]
    assert got.states["asleep"].tolist() == [0.0, 1.0]
    assert got.estimated_w.tolist() == [100.0, 5.0]  # u idle at 100 W, then asleep at 5 W
    assert got.demand["gpus"].tolist() == pytest.approx([4 * 200 / 300, 4 * 100 / 300])
    assert got.demand["cpus"].tolist() == pytest.approx([8 * 200 / 300, 8 * 100 / 300])
    assert got.used_kwh == pytest.approx((400 + 100 + 5) * 300 / 3.6e6)
    assert got.saved_kwh == pytest.approx(300 * 95 / 3.6e6)
    assert math.isnan(got.measured_w[1])


def test_the_last_step_counts_only_up_to_the_end():
    window = Window(0.0, 450.0, 300.0)  # the second step is half over
    got = fleet({"u": [Period(0.0, 450.0, "asleep")]}, set(), window, np.full(2, np.nan), [],
                Watts(100.0, 10.0))  # fmt: skip
    assert got.states["asleep"].tolist() == [1.0, 1.0]  # a mean over the part that passed
    assert got.saved_kwh == pytest.approx(450 * 90 / 3.6e6)
    assert got.used_kwh == pytest.approx(450 * 10 / 3.6e6)


def test_aligned_windows_start_on_a_step():
    window = Window.aligned(1000.0, 2000.0, 300.0)
    assert (window.start, window.steps, window.times[:2]) == (900.0, 4, [900.0, 1200.0])
