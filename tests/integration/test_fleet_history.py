"""Fleet history (`dormouse history --by`, `GET /api/v1/history`) over a real store, SQLite
and PostgreSQL: three nodes, one asleep for the second half of the window, answers that
were worked out by hand, and the sleeper's gap left a gap."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from coordinator.core.nodestate import NodeState
from coordinator.core.registry import NodeView
from coordinator.core.series import FleetQuery
from coordinator.http.api import Api
from coordinator.http.app import create_app
from coordinator.main import app
from coordinator.services import history, tokens
from coordinator.settings import CoordinatorConfig, Retention
from coordinator.store import nodes as node_rows
from coordinator.store import rollups as rollup_rows
from coordinator.store import samples as sample_rows
from coordinator.store.engine import create_engine, upgrade
from shared.messages import GpuSample, Sample, TelemetryBatch
from shared.metrics import BY_NAME
from tests import factories

HOUR = 3600.0
NOW = time.time()
T0 = NOW - NOW % HOUR - 3 * HOUR  # three whole hours ago: minutes and hours rolled up
TEAMS = {"a1": "x", "a2": "x", "b1": "y"}
CPU = {"a1": 10.0, "a2": 30.0, "b1": 50.0}  # each node's constant CPU use, in %


def samples(node: str, start: float, end: float) -> TelemetryBatch:
    """One sample every 10 s; two GPUs at CPU/2 and CPU/2 + 10 %."""
    cpu = CPU[node]
    return TelemetryBatch(
        node=node,
        seq_first=int((start - T0) // 10),
        samples=tuple(
            Sample(
                ts=T0 + t,
                metrics={"cpu_util_pct": cpu},
                gpus=(
                    GpuSample(index=0, uuid=f"{node}-0", metrics={"gpu_util_pct": cpu / 2}),
                    GpuSample(index=1, uuid=f"{node}-1", metrics={"gpu_util_pct": cpu / 2 + 10}),
                ),
            )
            for t in range(int(start - T0), int(end - T0), 10)
        ),
    )


@pytest.fixture
def engine(db_url, monkeypatch):
    """Two hours of a1 and a2; b1 only the first hour (asleep in the second)."""
    engine = create_engine(db_url)
    upgrade(engine)
    views = [
        NodeView(
            name=name,
            state=NodeState.ASLEEP if name == "b1" else NodeState.ONLINE,
            state_since=T0,
            hello=dataclasses.replace(factories.hello(name), labels={"team": team}),
        )
        for name, team in TEAMS.items()
    ]
    with engine.begin() as conn:
        node_rows.save_nodes(conn, views)
        for node in TEAMS:
            end = T0 + (HOUR if node == "b1" else 2 * HOUR)
            sample_rows.insert_batches(conn, [samples(node, T0, end)])
        while rollup_rows.roll_up(conn, T0 + 3 * HOUR, max_gap_s=30.0):
            pass
    monkeypatch.setenv("DORMOUSE_DB", db_url)
    yield engine
    engine.dispose()


def ask(engine, metric: str, by: str, step_s: float, agg: str = "avg", **extra) -> dict:
    query = FleetQuery(BY_NAME[metric], T0, T0 + 2 * HOUR, step_s, agg, extra.pop("gpu", None))
    return history.grouped(engine, query, by, extra.get("nodes"), extra.get("labels", {}),
                           Retention(), NOW)  # fmt: skip


def by_group(answer: dict) -> dict[str, list[list[float]]]:
    return {
        ",".join(f"{k}={v}" for k, v in s["group"].items()): s["points"] for s in answer["series"]
    }


def test_by_fleet_and_by_team_hourly_hand_computed(engine):
    fleet = ask(engine, "cpu_util_pct", "fleet", HOUR)
    assert (fleet["tier"], fleet["unit"], fleet["step_s"]) == ("hour", "%", HOUR)
    # hour 1: (10 + 30 + 50) / 3; hour 2, b1 asleep: (10 + 30) / 2
    assert by_group(fleet) == {"": [[T0, pytest.approx(30.0)], [T0 + HOUR, pytest.approx(20.0)]]}
    teams = by_group(ask(engine, "cpu_util_pct", "label:team", HOUR))
    assert teams == {
        "team=x": [[T0, pytest.approx(20.0)], [T0 + HOUR, pytest.approx(20.0)]],
        "team=y": [[T0, pytest.approx(50.0)]],  # the second hour is a gap, not a zero
    }
    busiest = by_group(ask(engine, "cpu_util_pct", "fleet", HOUR, "max"))
    assert busiest[""] == [[T0, 50.0], [T0 + HOUR, 30.0]]


def test_gpu_metrics_average_every_gpu_or_the_one_asked(engine):
    # every GPU: hour 1 (5, 15, 15, 25, 25, 35) -> 20; hour 2 (5, 15, 15, 25) -> 15
    every = by_group(ask(engine, "gpu_util_pct", "fleet", HOUR))[""]
    assert every == [[T0, pytest.approx(20.0)], [T0 + HOUR, pytest.approx(15.0)]]
    first = by_group(ask(engine, "gpu_util_pct", "label:team", HOUR, gpu=0))
    assert first["team=x"] == [[T0, pytest.approx(10.0)], [T0 + HOUR, pytest.approx(10.0)]]
    total = by_group(ask(engine, "gpu_util_pct", "fleet", HOUR, "sum", nodes="a*"))[""]
    assert total == [[T0, pytest.approx(60.0)], [T0 + HOUR, pytest.approx(60.0)]]


@pytest.mark.parametrize(
    ("module", "knob", "value"),
    [
        ("series", "NODES_LISTED", 1),
        ("wide", "SHARD_ROWS", 1),
        ("wide", "NAME_HASH", "(0 * length({}))::int8"),  # every name one hash
    ],
)
def test_unlisted_nodes_and_split_reads_answer_the_same(engine, monkeypatch, module, knob, value):
    """Past `NODES_LISTED` nodes the query names none and the reader drops other nodes'
    buckets (their entries and GPU indices with them); past `SHARD_ROWS` buckets
    PostgreSQL reads the window in concurrent shards; where names share a hash it reads
    the names. The answers stay the same."""
    from coordinator.store import series, wide  # noqa: PLC0415

    monkeypatch.setattr({"series": series, "wide": wide}[module], knob, value)
    every = by_group(ask(engine, "gpu_util_pct", "fleet", HOUR, nodes="a*"))[""]
    assert every == [[T0, pytest.approx(15.0)], [T0 + HOUR, pytest.approx(15.0)]]
    y = by_group(ask(engine, "gpu_util_pct", "fleet", HOUR, gpu=1, labels={"team": "y"}))[""]
    assert y == [[T0, pytest.approx(35.0)]]
    cpu = by_group(ask(engine, "cpu_util_pct", "label:team", HOUR))
    assert cpu["team=y"] == [[T0, pytest.approx(50.0)]]


def test_by_node_on_the_minute_tier_leaves_the_sleepers_gap(engine):
    nodes = by_group(ask(engine, "cpu_util_pct", "node", 600))
    assert [p[0] for p in nodes["node=a1"]] == [T0 + 600 * i for i in range(12)]
    assert [p[0] for p in nodes["node=b1"]] == [T0 + 600 * i for i in range(6)]
    assert [p[1] for p in nodes["node=b1"]] == [pytest.approx(50.0)] * 6
    fleet = by_group(ask(engine, "cpu_util_pct", "fleet", 600, labels={"team": "y"}))
    assert len(fleet[""]) == 6


def test_refusals(engine):
    with pytest.raises(history.NoNodes, match="no node matches"):
        ask(engine, "cpu_util_pct", "fleet", HOUR, nodes="zz*")
    with pytest.raises(history.HistoryError, match="--step of 1m or more"):
        ask(engine, "cpu_util_pct", "fleet", 10)


def test_the_cli_and_the_http_api_answer_the_same(engine, db_url, tmp_path):
    since = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(T0))
    until = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(T0 + 2 * HOUR))
    args = ["history", "--metric", "cpu_util_pct", "--since", since, "--until", until]
    result = CliRunner().invoke(app, [*args, "--by", "label:team", "--step", "1h", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert set(answer) >= {"metric", "unit", "step_s", "tier", "series"}
    assert by_group(answer)["team=y"] == [[T0, pytest.approx(50.0)]]
    table = CliRunner().invoke(app, [*args, "--step", "1h"])  # no --node: the fleet
    assert table.exit_code == 0, table.output
    assert "fleet" in table.output
    assert "20" in table.output
    png = tmp_path / "fleet.png"
    drawn = CliRunner().invoke(app, [*args, "--by", "node", "--step", "10m", "--png", str(png)])
    assert drawn.exit_code == 0, drawn.output
    assert png.read_bytes().startswith(b"\x89PNG")
    bad = CliRunner().invoke(app, [*args, "--by", "rack"])
    assert bad.exit_code == 2
    assert "expected node, fleet or label:KEY" in bad.output

    settings = dataclasses.replace(
        CoordinatorConfig(), db=db_url, command_key_file=tmp_path / "no.key"
    )
    client = TestClient(create_app(Api(engine, settings, FixedClock(T0 + 2 * HOUR))))
    token = tokens.create(engine, "read", "t", NOW).token
    got = client.get(
        "/api/v1/history",
        params={"metric": "cpu_util_pct", "by": "label:team", "since": "2h", "step": "1h"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert got.status_code == 200, got.text
    assert by_group(got.json()) == by_group(answer)
    refused = client.get(
        "/api/v1/history", params={"metric": "cpu_util_pct", "agg": "median"},
        headers={"Authorization": f"Bearer {token}"},
    )  # fmt: skip
    assert (refused.status_code, refused.json()["field"]) == (422, "agg")


@dataclasses.dataclass
class FixedClock:
    at: float

    def now(self) -> float:
        return self.at

    def monotonic(self) -> float:
        return self.at


def test_report_usage_reads_the_same_whole_and_split(engine, monkeypatch):
    """`dormouse report`'s read (`store.usage`) sorts each node's buckets out of one wide
    read; split into shards, or with names sharing a hash, it answers the same, the
    sleeper's missing hour missing."""
    from coordinator.power.energy import FIELDS  # noqa: PLC0415
    from coordinator.store import usage, wide  # noqa: PLC0415

    with engine.connect() as conn:
        whole = usage.load_usage(conn, T0 - 600, T0 + 3 * HOUR)
        monkeypatch.setattr(wide, "SHARD_ROWS", 1)
        split = usage.load_usage(conn, T0 - 600, T0 + 3 * HOUR)
        monkeypatch.setattr(wide, "NAME_HASH", "(0 * length({}))::int8")
        named = usage.load_usage(conn, T0 - 600, T0 + 3 * HOUR)
    starts = {n.name: n.buckets.start.tolist() for n in whole}
    assert starts == {"a1": [T0, T0 + HOUR], "a2": [T0, T0 + HOUR], "b1": [T0]}
    for a, b, c in zip(whole, split, named, strict=True):
        assert a.name == b.name == c.name
        for field in FIELDS:
            expected = getattr(a.buckets, field).tolist()
            assert expected == getattr(b.buckets, field).tolist()
            assert expected == getattr(c.buckets, field).tolist()
