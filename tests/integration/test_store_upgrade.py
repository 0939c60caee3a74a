"""A store written by the previous schema (0009, made with that code: see
tests/fixtures/make_store_0009.py.txt) upgrades in place and answers the same history."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from coordinator.core.series import SeriesQuery
from coordinator.store import rollups as rollup_rows
from coordinator.store import series as series_rows
from coordinator.store.engine import create_engine, current_revision, upgrade
from shared.metrics import BY_NAME

FIXTURES = Path(__file__).parent.parent / "fixtures"
T0 = 1_763_884_800.0


@pytest.fixture
def upgraded(tmp_path):
    path = tmp_path / "store.sqlite"
    shutil.copy(FIXTURES / "store_0009.sqlite", path)
    engine = create_engine(f"sqlite:///{path}")
    assert upgrade(engine) == "0009"
    with engine.begin() as conn:  # the leader's next pass: minutes marked by the conversion
        while rollup_rows.roll_up(conn, T0 + 3 * 3600, max_gap_s=30.0):
            pass
    yield engine
    engine.dispose()


def test_every_raw_sample_converts_and_the_old_tables_go(upgraded):
    assert current_revision(upgraded) == "0016"
    with upgraded.connect() as conn:
        held = conn.execute(
            sa.text(
                "SELECT node, sum(seq_last - seq_first + 1), min(seq_first), max(seq_last) "
                "FROM raw_chunks GROUP BY node ORDER BY node"
            )
        ).all()
        tables = set(sa.inspect(conn).get_table_names())
    assert [tuple(r) for r in held] == [("cpu-b", 720, 0, 719), ("gpu-a", 720, 0, 719)]
    assert not tables & {"samples", "gpu_samples", "rollup_minute", "rollup_hour"}


def test_history_answers_as_before_the_upgrade(upgraded):
    expected = json.loads((FIXTURES / "store_0009_history.json").read_text())
    for case in expected:
        query = SeriesQuery(
            node=case["node"],
            metric=BY_NAME[case["metric"]],
            gpu_index=case["gpu"],
            since=T0,
            until=T0 + 7200,
            step_s=case["step"],
        )
        with upgraded.connect() as conn:
            points = series_rows.history(conn, query, case["tier"])
        got = [[p.ts, p.agg.count, p.agg.avg, p.agg.min, p.agg.max, p.agg.delta] for p in points]
        assert len(got) == len(case["points"]), case["metric"]
        for mine, theirs in zip(got, case["points"], strict=True):
            assert [v is None for v in mine] == [v is None for v in theirs], case["metric"]
            assert [v for v in mine if v is not None] == pytest.approx(
                [v for v in theirs if v is not None], rel=1e-6
            ), (case["metric"], case["tier"])
