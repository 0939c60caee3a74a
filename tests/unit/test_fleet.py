"""Fleet queries' pure core: members' steps, then groups; grouping by glob and labels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.core import fleet


def entries(rows: list[tuple[int, int, int, float, float, float, float]]) -> fleet.Entries:
    """(member, group, step, count, value, min, max) each."""
    array = np.array(rows, dtype=np.float64).reshape(-1, 7)
    as_int = array[:, :3].astype(np.int64)
    return fleet.Entries(as_int[:, 0], as_int[:, 1], as_int[:, 2], array[:, 3:])


def points(result: fleet.Points) -> list[tuple[int, int, float]]:
    return [
        (int(g), int(s), round(float(v), 9))
        for g, s, v in zip(result.group, result.step, result.value, strict=True)
    ]


def test_a_members_buckets_merge_weighted_by_count_before_the_group_averages():
    found = entries([
        (0, 0, 0, 30, 10.0, 5, 20),  # member 0: 30 samples at 10, 10 samples at 50: avg 20
        (0, 0, 0, 10, 50.0, 40, 60),
        (1, 0, 0, 1, 40.0, 40, 40),  # member 1: one sample: it weighs as much as member 0
        (2, 1, 0, 60, 7.0, 7, 7),
    ])  # fmt: skip
    assert points(fleet.combine(found, "avg", counter=False)) == [(0, 0, 30.0), (1, 0, 7.0)]
    assert points(fleet.combine(found, "sum", counter=False)) == [(0, 0, 60.0), (1, 0, 7.0)]
    assert points(fleet.combine(found, "max", counter=False)) == [(0, 0, 60.0), (1, 0, 7.0)]
    assert points(fleet.combine(found, "min", counter=False)) == [(0, 0, 5.0), (1, 0, 7.0)]


def test_counters_add_their_increases_and_empty_buckets_leave_a_gap():
    found = entries([
        (0, 0, 0, 60, 100.0, 0, 100),
        (0, 0, 0, 60, 50.0, 100, 150),
        (1, 0, 0, 60, 25.0, 0, 25),
        (1, 0, 2, 60, 5.0, 25, 30),
        (0, 0, 1, 0, np.nan, np.nan, np.nan),  # no sample: no point for step 1
    ])  # fmt: skip
    assert points(fleet.combine(found, "sum", counter=True)) == [(0, 0, 175.0), (0, 2, 5.0)]
    assert points(fleet.combine(found, "avg", counter=True)) == [(0, 0, 87.5), (0, 2, 5.0)]


@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 4), st.floats(-1e6, 1e6)),
        min_size=1,
        max_size=60,
    )
)
def test_p95_is_numpys_percentile_per_group_and_step(rows):
    # One bucket per member and step, so the member's value is the bucket's.
    unique = {(m, s): v for m, s, v in rows}
    found = entries([(m, m % 2, s, 1, v, v, v) for (m, s), v in unique.items()])
    got = {(g, s): v for g, s, v in points(fleet.combine(found, "p95", counter=False))}
    expected: dict[tuple[int, int], list[float]] = {}
    for (m, s), v in unique.items():
        expected.setdefault((m % 2, s), []).append(v)
    assert got.keys() == expected.keys()
    for key, values in expected.items():
        assert got[key] == pytest.approx(np.percentile(values, 95), rel=1e-9, abs=1e-6)


def test_an_unknown_aggregate_is_refused():
    with pytest.raises(ValueError, match="agg must be one of"):
        fleet.combine(entries([]), "median", counter=False)


LABELS = {
    "gpu-01": {"team": "a", "rack": "r1"},
    "gpu-02": {"team": "b", "rack": "r1"},
    "gpu-03": {"team": "a", "rack": "r2"},
    "cpu-01": {"rack": "r1"},
}


def test_grouping_by_label_fleet_and_node_with_glob_and_label_filters():
    teams = fleet.group(LABELS, None, {}, "label:team")
    assert teams.groups == [{"team": None}, {"team": "a"}, {"team": "b"}]
    assert teams.group_of == {"cpu-01": 0, "gpu-01": 1, "gpu-02": 2, "gpu-03": 1}
    everyone = fleet.group(LABELS, "gpu-*", {"rack": "r1"}, "fleet")
    assert everyone.groups == [{}]
    assert everyone.group_of == {"gpu-01": 0, "gpu-02": 0}
    nodes = fleet.group(LABELS, "*-01", {}, "node")
    assert nodes.groups == [{"node": "cpu-01"}, {"node": "gpu-01"}]
    assert fleet.group(LABELS, "none-*", {}, "fleet").group_of == {}


@pytest.mark.parametrize("by", ["label", "label:", "rack", "nodes"])
def test_a_bad_by_is_refused(by):
    with pytest.raises(ValueError, match="expected node, fleet or label:KEY"):
        fleet.parse_by(by)
