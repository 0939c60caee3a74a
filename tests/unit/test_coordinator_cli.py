"""`dormouse` commands that read the store, in-process, over a SQLite store with data."""

from __future__ import annotations

import json
import re
import sys
import time

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from coordinator.core.nodestate import NodeState
from coordinator.core.registry import NodeView
from coordinator.main import app, main
from coordinator.services import nodes as node_service
from coordinator.store import leadership as leader_rows
from coordinator.store import nodes as node_rows
from coordinator.store import samples as sample_rows
from coordinator.store import stats as stat_rows
from coordinator.store import workers as worker_rows
from tests import factories

runner = CliRunner()


@pytest.fixture
def store(empty_store):
    engine = empty_store
    batch = factories.telemetry(node="gpu-01", seq_first=0, count=120)
    with engine.begin() as conn:
        sample_rows.insert_batches(conn, [batch])
        node_rows.save_nodes(
            conn,
            [
                NodeView(
                    name="gpu-01",
                    state=NodeState.ONLINE,
                    state_since=factories.TS,
                    last_seen=factories.TS + 119,
                    hello=factories.hello(),
                    latest={"cpu_util_pct": 12.0, "gpus": 1},
                )
            ],
        )
        stat_rows.write_stats(conn, {"samples_stored": 120.0, "dropped_schema": 3.0}, factories.TS)
    return engine.url


def test_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "nodes", "history", "status", "db", "config", "key"):
        assert command in result.output
    assert runner.invoke(app, ["db", "--help"]).exit_code == 0


def test_nodes_json_and_table(store):
    rows = json.loads(runner.invoke(app, ["nodes", "--json"]).output)
    assert rows == [
        {
            "node": "gpu-01",
            "state": "online",
            "last_seen": factories.TS + 119,
            "cpu_util_pct": 12.0,
            "mem_used_bytes": None,
            "mem_total_bytes": None,
            "gpus": 1,
            "gpu_util_pct": None,
            "power_w": None,
            "jobs": None,
            "connections": None,
            "drained": False,
            "gpus_drained": 0,
            "gpus_failed": 0,
            "gpus_degraded": 0,
            "commands": "unknown",  # the factory's hello is an agent's from before key ids
        }
    ]
    table = runner.invoke(app, ["nodes"])
    assert table.exit_code == 0
    assert "gpu-01" in table.output


def test_status(store):
    found = json.loads(runner.invoke(app, ["status", "--json"]).output)
    assert found["figures"]["samples_stored"]["value"] == 120
    assert found["figures"]["dropped_schema"]["value"] == 3
    assert found["store_bytes"] > 0
    assert found["store_bytes_raw"] >= 0
    assert (found["leader"], found["workers"]) == (None, [])


def test_status_json_times_are_epoch_and_the_table_reads_as_people_do(store):
    """One rule for every `--json`: times are epoch seconds (UTC); tables show ISO."""
    stored = json.loads(runner.invoke(app, ["status", "--json"]).output)["figures"][
        "samples_stored"
    ]
    assert isinstance(stored["updated"], int | float)
    assert stored["updated"] > 1.7e9
    assert stored["value"] == 120
    assert isinstance(stored["value"], int)  # a counter, though the store holds a float
    table = runner.invoke(app, ["status"]).output
    assert "120.0" not in table
    sizes = [line for line in table.splitlines() if "store_bytes_" in line]
    assert len(sizes) == 3
    assert all(" B " in line or "KiB" in line or "MiB" in line for line in sizes), sizes
    assert re.search(r"store_bytes\s*│\s*[\d.]+ (KiB|MiB)", table)


def test_piped_tables_do_not_wrap_at_80_columns(store, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    table = runner.invoke(app, ["status"]).output
    rows = [line for line in table.splitlines() if "samples_stored" in line]
    assert len(rows) == 1
    assert "Z" in rows[0]  # the time is on the same line


HISTORY = [
    "history",
    "--node",
    "gpu-01",
    "--since",
    "2025-11-23T07:59:00+00:00",
    "--until",
    "2025-11-23T08:03:00+00:00",
]


def test_history_formats(store, tmp_path):
    series = json.loads(
        runner.invoke(app, [*HISTORY, "--metric", "cpu_util_pct", "--step", "1m", "--json"]).output
    )
    assert [p["count"] for p in series["points"]] == [60, 60]
    assert series["points"][0]["value"] == pytest.approx(sum(10.0 + i for i in range(60)) / 60)
    csv = runner.invoke(app, [*HISTORY, "--metric", "cpu_util_pct", "--format", "csv"]).output
    assert csv.splitlines()[0] == "time,ts,value,count"
    plot = runner.invoke(app, [*HISTORY, "--metric", "cpu_util_pct", "--format", "plot"])
    assert "█" in plot.output
    png = tmp_path / "chart.png"
    table = runner.invoke(
        app, [*HISTORY, "--metric", "gpu_energy_j", "--gpu", "0", "--png", str(png)]
    )
    assert table.exit_code == 0, table.output
    assert png.read_bytes().startswith(b"\x89PNG")


def test_history_max_and_counters(store):
    series = json.loads(
        runner.invoke(app, [*HISTORY, "--metric", "cpu_util_pct", "--agg", "max", "--json"]).output
    )
    assert series["points"][1]["value"] == 10.0 + 79  # cpu is 10 + i % 80
    energy = json.loads(runner.invoke(app, [*HISTORY, "--metric", "gpu_energy_j", "--json"]).output)
    assert all(p["value"] == 0.0 for p in energy["points"])  # the factory's counter is flat


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--node", "nope", "--metric", "cpu_util_pct"], "unknown node 'nope'; nodes: gpu-01"),
        (["--node", "gpu-01", "--metric", "bogus"], "unknown metric 'bogus'; metrics: cpu_util"),
        (["--node", "gpu-01"], "--metric is required"),
        (["--node", "gpu-01", "--metric", "cpu_util_pct", "--agg", "p99"], "--agg must be"),
        (["--node", "gpu-01", "--metric", "cpu_util_pct", "--step", "0s"], "more than 0"),
    ],
)
def test_history_refusals_exit_2_naming_what_exists(store, args, message):
    result = runner.invoke(app, ["history", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_list_metrics():
    result = runner.invoke(app, ["history", "--list-metrics", "--json"])
    names = {row["metric"] for row in json.loads(result.output)}
    assert {"cpu_util_pct", "gpu_energy_j", "power_w"} <= names
    for part in ("xid", "ecc", "remap", "pcie_replay", "throttle", "clock"):  # the interface
        assert any(n.startswith("gpu_") and part in n for n in names), part


def test_commands_on_a_missing_store_exit_2(monkeypatch, tmp_path):
    monkeypatch.setenv("DORMOUSE_DB", f"sqlite:///{tmp_path / 'none.db'}")
    result = runner.invoke(app, ["nodes"])
    assert result.exit_code == 2
    assert "holds no dormouse store yet" in result.output


def test_db_upgrade_and_current(monkeypatch, tmp_path):
    monkeypatch.setenv("DORMOUSE_DB", f"sqlite:///{tmp_path / 'new.db'}")
    assert "store: empty" in runner.invoke(app, ["db", "current"]).output
    assert "(was empty)" in runner.invoke(app, ["db", "upgrade"]).output
    assert "store: 0016" in runner.invoke(app, ["db", "current"]).output


def test_run_refuses_a_bad_db_url(monkeypatch):
    monkeypatch.setenv("DORMOUSE_DB", "::nonsense")
    result = runner.invoke(app, ["run"])
    assert result.exit_code == 2
    assert "db (from environment DORMOUSE_DB): not a database URL" in result.output


def test_run_refuses_a_split_role_on_sqlite_and_an_unknown_role(monkeypatch, tmp_path):
    monkeypatch.setenv("DORMOUSE_DB", f"sqlite:///{tmp_path / 'd.db'}")
    result = runner.invoke(app, ["run", "--role", "ingest"])
    assert result.exit_code == 2
    assert result.output.strip().endswith(
        "role ingest needs a PostgreSQL store shared by every process (SQLite allows only role all)"
    )
    monkeypatch.setenv("DORMOUSE_ROLE", "worker")
    result = runner.invoke(app, ["run"])
    assert result.exit_code == 2
    assert "role (from environment DORMOUSE_ROLE): expected one of all, ingest, leader" in (
        result.output
    )
    assert not (tmp_path / "d.db").exists()  # refused before anything was made
    monkeypatch.setenv("DORMOUSE_ROLE", "leader")
    checked = runner.invoke(app, ["config", "check"])
    assert checked.exit_code == 2
    assert "role leader needs a PostgreSQL store" in checked.output


def test_status_lists_the_processes_heard_from_lately(store):
    now = time.time()
    engine = sa.create_engine(store)
    with engine.begin() as conn:
        for id_, role, seen, stored in (
            ("h:1", "leader", now, 0.0),
            ("h:2", "ingest", now - 1, 600.0),
            ("h:3", "ingest", now - 3600, 5.0),  # gone an hour ago: not listed
        ):
            figures = {"samples_stored": stored, "lag_p99_s": 0.5}
            worker_rows.beat(conn, worker_rows.Worker(id_, role, now - 60, seen, figures))
    engine.dispose()
    listed = json.loads(runner.invoke(app, ["status", "--json"]).output)["workers"]
    assert [(w["id"], w["role"], w["samples_stored"]) for w in listed] == [
        ("h:1", "leader", 0.0),
        ("h:2", "ingest", 600.0),
    ]
    assert max(w["seen_at"] for w in listed) == pytest.approx(now)
    table = runner.invoke(app, ["status"]).output
    assert "h:2 (ingest): 600 stored" in table


def test_one_node_in_full(store):
    result = runner.invoke(app, ["nodes", "show", "gpu-01", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert (shown["node"], shown["state"], shown["state_since"]) == (
        "gpu-01",
        "online",
        factories.TS,
    )
    assert shown["hello"]["cpus"] == 32
    assert json.loads(runner.invoke(app, ["node", "gpu-01", "--json"]).output) == shown
    table = runner.invoke(app, ["node", "gpu-01"])
    assert table.exit_code == 0
    assert "gpu-01.example" in table.output
    missing = runner.invoke(app, ["node", "nosuch"])
    assert missing.exit_code == 2
    assert "unknown node 'nosuch'; nodes: gpu-01" in missing.output


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("mysql://root@127.0.0.1/test", "dormouse stores in SQLite or PostgreSQL"),
        ("postgres://u@127.0.0.1/test", "use postgresql+psycopg://"),
    ],
)
def test_an_unsupported_database_url_is_one_line_with_a_hint(url, hint):
    result = runner.invoke(app, ["nodes", "--db", url])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert hint in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql+psycopg://postgres@127.0.0.1:1/x", "port 1 failed: Connection refused"),
        ("sqlite:///{tmp}/garbage.db", "file is not a database"),
    ],
)
def test_a_database_error_is_one_line_without_a_link(url, reason, tmp_path):
    (tmp_path / "garbage.db").write_text("not sqlite " * 100)
    result = runner.invoke(app, ["nodes", "--db", url.format(tmp=tmp_path)])
    assert result.exit_code == 2
    assert reason in result.output
    assert "sqlalche.me" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_database_error_mid_command_is_one_line_and_exit_1(store, monkeypatch, capsys):
    def gone(*_: object) -> None:
        raise sa.exc.OperationalError("SELECT 1", {}, RuntimeError("server closed the connection"))

    monkeypatch.setattr(node_service, "summaries", gone)
    monkeypatch.setattr(sys, "argv", ["dormouse", "nodes"])
    with pytest.raises(SystemExit) as ended:
        main()
    assert ended.value.code == 1
    assert capsys.readouterr().err == "dormouse: error: db: server closed the connection\n"


def test_list_metrics_names_only_what_history_can_show(store):
    listed = json.loads(runner.invoke(app, ["history", "--list-metrics", "--json"]).output)
    names = {m["metric"] for m in listed}
    assert "cpu_util_pct" in names
    assert "cpu_core_util_pct" not in names  # a per-core vector: not a time series
    for name in names:
        result = runner.invoke(app, [*HISTORY, "--metric", name, "--json"])
        assert result.exit_code == 0, (name, result.output)


def test_reading_commands_never_create_a_store(tmp_path):
    path = tmp_path / "not" / "here.db"
    for argv in (["nodes"], ["status"], ["jobs"], ["power-events"]):
        result = runner.invoke(app, [*argv, "--db", f"sqlite:///{path}"])
        assert result.exit_code == 2, (argv, result.output)
        assert "holds no dormouse store yet" in result.output
    current = runner.invoke(app, ["db", "current", "--db", f"sqlite:///{path}"])
    assert current.exit_code == 0
    assert current.output.startswith("store: empty;")
    assert not path.parent.exists()


def test_drain_and_undrain_a_node_and_a_gpu(store):
    assert runner.invoke(app, ["drain", "gpu-01", "--reason", "fan swap"]).exit_code == 0
    result = runner.invoke(app, ["nodes", "drain", "gpu-01", "--gpu", "0"])
    assert result.exit_code == 0, result.output
    assert result.output == "drained gpu-01 GPU 0: no new work from the coordinator's next pass\n"
    (row,) = json.loads(runner.invoke(app, ["nodes", "--json"]).output)
    assert (row["drained"], row["gpus_drained"]) == (True, 1)
    assert "drained, 1 GPU drained" in runner.invoke(app, ["nodes"]).output
    shown = json.loads(runner.invoke(app, ["node", "gpu-01", "--json"]).output)
    assert shown["drain_reason"] == "fan swap"
    assert shown["gpu_health"] == [
        {
            "index": 0,
            "health": "ok",
            "reason": "",
            "drained": True,
            "drain_reason": "drained by an operator",
        }
    ]
    assert [(e["gpu_index"], e["kind"], e["reason"]) for e in shown["gpu_events"]] == [
        (0, "drain", "drained by an operator"),
        (-1, "drain", "fan swap"),
    ]
    assert runner.invoke(app, ["undrain", "gpu-01"]).output == "undrained gpu-01\n"
    assert runner.invoke(app, ["undrain", "gpu-01"]).output == "gpu-01 was not drained\n"
    assert runner.invoke(app, ["undrain", "gpu-01", "--gpu", "0"]).exit_code == 0
    (row,) = json.loads(runner.invoke(app, ["nodes", "--json"]).output)
    assert (row["drained"], row["gpus_drained"]) == (False, 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["drain", "nosuch"], "unknown node 'nosuch'; nodes: gpu-01"),
        (["drain", "gpu-01", "--gpu", "3"], "node 'gpu-01' has no GPU 3 (its GPUs: 0)"),
        (["undrain", "gpu-01", "--gpu", "-1"], "-1 is not in the range x>=0"),
    ],
)
def test_drain_refusals_are_one_line(store, args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_gpu_health_from_the_latest_sample_shows_in_listing_and_detail(store):
    engine = sa.create_engine(store)
    with engine.begin() as conn:
        (view,) = node_rows.load_nodes(conn, "gpu-01")
        view.latest = {"gpus": 1, "gpu_health": {"0": ["failed", "XID 79: fell off the bus"]}}
        node_rows.save_nodes(conn, [view])
    (row,) = json.loads(runner.invoke(app, ["nodes", "--json"]).output)
    assert (row["gpus_failed"], row["gpus_degraded"]) == (1, 0)
    assert "1 GPU failed" in runner.invoke(app, ["nodes"]).output
    shown = json.loads(runner.invoke(app, ["node", "gpu-01", "--json"]).output)
    assert shown["gpu_health"][0]["reason"] == "XID 79: fell off the bus"
    assert "XID 79: fell off the bus" in runner.invoke(app, ["node", "gpu-01"]).output


def test_status_names_no_dead_leader(store):
    """A leader that has not renewed its lead for three leases is gone: `status` says who
    led last and for how long it has been silent, not that it leads."""
    now = time.time()
    engine = sa.create_engine(store)
    with engine.begin() as conn:
        epoch = leader_rows.take(conn, "h:9", now - 120)  # renewed 2 min ago, then nothing
    engine.dispose()
    found = json.loads(runner.invoke(app, ["status", "--json"]).output)
    assert found["leader"] is None
    assert found["last_leader"] == {"id": "h:9", "epoch": epoch, "renewed_at": now - 120}
    assert "none: h:9" in runner.invoke(app, ["status"]).output
    engine = sa.create_engine(store)
    with engine.begin() as conn:
        assert leader_rows.renew(conn, "h:9", epoch, time.time())
    engine.dispose()
    found = json.loads(runner.invoke(app, ["status", "--json"]).output)
    assert (found["leader"]["id"], found["last_leader"]) == ("h:9", None)
