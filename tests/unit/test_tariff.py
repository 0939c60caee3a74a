"""Tariff and carbon files: parsing, the exact integral, and the clocks they are read by."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.power.tariff import DAY_S, WEEK_S, Rate, parse_rate
from shared.errors import ConfigError

H = 3600.0


def day_night(day: float = 0.2, night: float = 0.1) -> list[str]:
    """08:00-20:00 at `day`, the rest at `night`."""
    rows = [f"{h},{day if 8 <= h < 20 else night}" for h in range(24)]
    return ["hour,price", *rows]


def test_a_daily_table_repeats_and_integrates_exactly():
    rate = parse_rate(day_night(), "t.csv")
    assert rate.period_s == DAY_S
    assert (rate.at(7 * H), rate.at(8 * H), rate.at(19.99 * H), rate.at(20 * H)) == (
        0.1,
        0.2,
        0.2,
        0.1,
    )
    assert rate.at(3 * DAY_S + 9 * H) == 0.2
    assert rate.integral(0, DAY_S) == pytest.approx(12 * H * 0.1 + 12 * H * 0.2)
    # 07:00 to 09:00 on the third day: an hour of night and an hour of day
    assert rate.integral(2 * DAY_S + 7 * H, 2 * DAY_S + 9 * H) == pytest.approx(H * 0.3)
    assert rate.mean(19 * H, 21 * H) == pytest.approx(0.15)
    assert rate.changes(7 * H, 21 * H) == [8 * H, 20 * H]
    assert not rate.is_flat
    assert Rate.flat(0.15).is_flat


def test_a_weekly_table_holds_each_row_until_the_next():
    lines = ["weekday,hour,price", "0,0,1.0", "5,0,0.5"]  # Saturday and Sunday cheaper
    rate = parse_rate(lines, "w.csv")
    assert rate.period_s == WEEK_S
    assert rate.at(4 * DAY_S + 23 * H) == 1.0
    assert rate.at(5 * DAY_S) == rate.at(6 * DAY_S + 23 * H) == 0.5
    assert rate.at(WEEK_S + 1) == 1.0
    assert rate.integral(0, WEEK_S) == pytest.approx(5 * DAY_S + 2 * DAY_S * 0.5)


def test_a_series_holds_its_ends_and_lays_on_trace_time_from_a_monday():
    lines = ["time,price", "2026-11-25T10:00:00Z,0.3", "2026-11-25T12:00:00+00:00,0.1"]
    rate = parse_rate(lines, "s.csv")
    assert rate.period_s is None
    ten = rate.starts[0]
    assert (rate.at(ten - 1e6), rate.at(ten + H), rate.at(ten + 1e6)) == (0.3, 0.3, 0.1)
    assert rate.integral(ten, ten + 4 * H) == pytest.approx(2 * H * 0.3 + 2 * H * 0.1)
    on_trace = rate.on_trace()  # 2026-11-25 is a Wednesday: trace 0 is Monday 23rd 00:00
    assert on_trace.at(2 * DAY_S + 11 * H) == 0.3
    assert on_trace.at(2 * DAY_S + 12 * H) == 0.1
    assert on_trace.changes(0, 3 * DAY_S) == [2 * DAY_S + 10 * H, 2 * DAY_S + 12 * H]


def test_a_table_on_the_daemons_clock_is_local_time():
    rate = parse_rate(day_night(), "t.csv")
    monday = 4 * DAY_S  # 1970-01-05, a Monday, 00:00 UTC
    assert rate.on_epoch(0).at(monday + 9 * H) == 0.2
    assert rate.on_epoch(0).at(monday + 7.5 * H) == 0.1
    # UTC+1: 07:30 UTC is 08:30 local, day price
    assert rate.on_epoch(3600).at(monday + 7.5 * H) == 0.2
    assert rate.on_epoch(3600).changes(monday, monday + 10 * H) == [monday + 7 * H]


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        (["hour,cost", "0,1"], "expected a `price` column"),
        (["when,price", "0,1"], "an `hour` or a `time` column"),
        (["hour,price", "0,1"], "expected 24 rows"),
        (["hour,price", "24,1"], "t.csv:2: hour must be a whole number 0-23"),
        (["hour,price", "0,cheap"], "t.csv:2: price 'cheap' is not a number"),
        (["hour,price", "0,-1"], "t.csv:2: price must be a number >= 0"),
        (["hour,price", "0,1", "0,2"], "t.csv:3: weekday 0 hour 0 given twice"),
        (["weekday,hour,price", "1,0,1"], "must give weekday 0"),
        (["time,price", "yesterday,1"], "t.csv:2: time 'yesterday' is not ISO-8601"),
        (["time,price", "2026-01-02,1", "2026-01-01,1"], "t.csv:3: times must ascend"),
        (["time,price"], "no rows"),
        (["hour,price", "0,nan"], "must be a number >= 0"),
    ],
)
def test_bad_files_name_the_line(lines: list[str], reason: str):
    with pytest.raises(ConfigError, match=reason.replace("(", r"\(")):
        parse_rate(lines, "t.csv")


def test_the_carbon_column():
    rate = parse_rate(
        ["hour,gco2_per_kwh", *[f"{h},{100 + h}" for h in range(24)]], "c", column="gco2_per_kwh"
    )
    assert rate.at(5 * H) == 105


times = st.floats(min_value=-2 * WEEK_S, max_value=4 * WEEK_S, allow_nan=False)


@given(a=times, b=times, c=times, offset=st.sampled_from([0.0, -18_000.0, 19_800.0]))
def test_integrals_add_up_and_means_lie_within_the_prices(a, b, c, offset):
    rate = parse_rate(day_night(0.3, 0.1), "t.csv").on_epoch(offset)
    assert rate.integral(a, b) + rate.integral(b, c) == pytest.approx(rate.integral(a, c), abs=1e-3)
    lo, hi = sorted((a, b))
    if hi - lo > 1:
        assert 0.1 - 1e-9 <= rate.mean(lo, hi) <= 0.3 + 1e-9
