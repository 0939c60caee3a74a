"""The hour-of-week demand forecast, on synthetic demand with a known period."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.power.forecast import HOUR_S, HOURS_PER_WEEK, DemandForecast

WEEK_S = HOURS_PER_WEEK * HOUR_S


def weekly(hour: int) -> int:
    """GPUs asked per hour: 40 in working hours on weekdays, 4 otherwise."""
    day, hour_of_day = divmod(hour % HOURS_PER_WEEK, 24)
    return 40 if day < 5 and 8 <= hour_of_day < 20 else 4


def feed(forecast: DemandForecast, weeks: int, rng: random.Random | None = None) -> None:
    for hour in range(weeks * HOURS_PER_WEEK):
        asked = weekly(hour)
        if rng is not None:
            asked = max(0, asked + rng.randint(-3, 3))
        for i in range(asked):  # one GPU a job, spread over the hour
            forecast.observe(hour * HOUR_S + (i + 0.5) * HOUR_S / max(asked, 1), 1)


def test_a_weekly_demand_is_predicted_hour_by_hour():
    forecast = DemandForecast(alpha=0.5)
    feed(forecast, weeks=3, rng=random.Random(7))
    forecast.advance(3 * WEEK_S)
    for hour in range(HOURS_PER_WEEK):  # the fourth week, forecast before it is seen
        predicted = forecast.gpus_per_hour(3 * WEEK_S + hour * HOUR_S)
        assert predicted == pytest.approx(weekly(hour), abs=3.5)
    monday_noon, sunday_noon = 3 * WEEK_S + 12 * HOUR_S, 3 * WEEK_S + (6 * 24 + 12) * HOUR_S
    assert forecast.gpus_per_hour(monday_noon) > 5 * forecast.gpus_per_hour(sunday_noon)


def test_the_spare_pool_follows_the_forecast_within_its_bounds():
    forecast = DemandForecast(alpha=1.0)
    feed(forecast, weeks=1)
    forecast.advance(WEEK_S)
    busy, quiet = WEEK_S + 12 * HOUR_S, WEEK_S + 2 * HOUR_S  # Monday noon, Monday 02:00
    # 40 GPUs/hour x a 600 s wake: 6.67, so 7 kept free; 4/hour: 0.67, so 1
    assert forecast.spare_gpus(busy, 600, least=0, most=16) == 7
    assert forecast.spare_gpus(quiet, 600, least=0, most=16) == 1
    assert forecast.spare_gpus(busy, 600, least=0, most=4) == 4
    assert forecast.spare_gpus(quiet, 600, least=2, most=16) == 2


def test_a_change_in_demand_is_followed_week_over_week():
    forecast = DemandForecast(alpha=0.5)
    for week in range(4):
        forecast.observe(week * WEEK_S + 1, 100 if week < 2 else 0)
    forecast.advance(4 * WEEK_S)
    assert forecast.gpus_per_hour(4 * WEEK_S) == pytest.approx(25.0)  # 100, 100, then halved twice


def test_nothing_seen_forecasts_nothing_and_unseen_hours_take_the_mean():
    forecast = DemandForecast()
    assert forecast.gpus_per_hour(12345.0) == 0.0
    forecast.observe(0.0, 10)
    forecast.observe(HOUR_S, 20)
    forecast.advance(2 * HOUR_S)
    assert forecast.gpus_per_hour(50 * HOUR_S) == pytest.approx(15.0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 5 * WEEK_S), st.integers(0, 16)), max_size=60))
def test_any_submissions_give_a_bounded_non_negative_forecast(submissions):
    forecast = DemandForecast(alpha=0.3)
    for ts, gpus in sorted(submissions):
        forecast.observe(ts, gpus)
    total = sum(g for _, g in submissions)
    for hour in range(0, HOURS_PER_WEEK, 7):
        assert 0.0 <= forecast.gpus_per_hour(hour * HOUR_S) <= total
        assert 0 <= forecast.spare_gpus(hour * HOUR_S, 300, least=0, most=8) <= 8


def test_the_window_reaches_into_the_next_hour():
    """At 07:50 with a 20-minute wake: 10 minutes of 07:00 (4/hour), 10 of 08:00 (40/hour)."""
    forecast = DemandForecast(alpha=1.0)
    feed(forecast, weeks=1)
    forecast.advance(WEEK_S)
    ten_to_eight = WEEK_S + 7 * HOUR_S + 50 * 60
    assert forecast.expected(ten_to_eight, 20 * 60) == pytest.approx(4 / 6 + 40 / 6)
    assert forecast.spare_gpus(ten_to_eight, 20 * 60, least=0, most=16) == 8


def test_the_window_changes_hour_at_either_edge():
    assert DemandForecast.next_change(100.0, 600.0) == 3001.0  # 3001 + 600: 01:00:01
    assert DemandForecast.next_change(3100.0, 600.0) == HOUR_S  # the window's start at 01:00
    assert DemandForecast.next_change(0.0, 7200.0) == HOUR_S
