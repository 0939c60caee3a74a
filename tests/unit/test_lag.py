"""The ingest lag figures behind `dormouse status` and the /metrics summary."""

from __future__ import annotations

from coordinator.core.lag import LagStats


def test_quantiles_come_from_the_window_and_totals_from_every_sample() -> None:
    lag = LagStats(window=100)
    lag.add(float(i) for i in range(1000))
    assert lag.count == 1000
    assert lag.sum_s == sum(range(1000))
    assert lag.quantiles() == {0.5: 950.0, 0.9: 990.0, 0.99: 999.0}


def test_nothing_committed_reads_zero() -> None:
    assert LagStats().quantiles() == {0.5: 0.0, 0.9: 0.0, 0.99: 0.0}
    assert LagStats().count == 0
