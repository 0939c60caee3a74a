from __future__ import annotations

import pytest

from coordinator.core.rollups import Aggregate, bucket_start, counter, gauge, merge


def test_gauge():
    assert gauge([1.0, 3.0, 2.0]) == Aggregate(count=3, avg=2.0, min=1.0, max=3.0)
    assert gauge([]) == Aggregate(count=0)


@pytest.mark.parametrize(
    ("previous", "values", "delta"),
    [
        (None, [10.0, 12.0, 15.0], 5.0),
        (8.0, [10.0, 12.0], 4.0),
        (None, [10.0, 12.0, 1.0, 3.0], 2.0 + 1.0 + 2.0),  # reset to 0, then 1 and 2 more
        (20.0, [5.0], 5.0),  # the counter restarted before this bucket
        (None, [7.0], 0.0),
    ],
)
def test_counter_increase_with_resets(previous, values, delta):
    assert counter(previous, values).delta == delta


def test_merge_weights_averages_and_sums_deltas():
    merged = merge(
        [Aggregate(2, 10.0, 5.0, 15.0, None), Aggregate(6, 2.0, 1.0, 3.0, None), Aggregate(0)]
    )
    assert merged == Aggregate(8, (2 * 10 + 6 * 2) / 8, 1.0, 15.0, None)
    energy = merge([Aggregate(60, delta=5.0), Aggregate(60, delta=7.5)])
    assert energy.delta == 12.5
    assert merge([]) == Aggregate(0)


def test_buckets():
    assert bucket_start(125.0, 60) == 120.0
    assert bucket_start(3599.9, 3600) == 0.0
