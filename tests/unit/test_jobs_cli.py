"""`dormouse submit | jobs | job | cancel | pick`, in-process, over a SQLite store with one
known node (32 cpus, 256 GiB, one GPU, rack=r1)."""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from coordinator.core.nodestate import NodeState
from coordinator.core.registry import NodeView
from coordinator.main import app
from coordinator.services.jobs import HELD_NO_KEY
from coordinator.store import nodes as node_rows
from coordinator.store import picks as pick_rows
from coordinator.store import stats as stat_rows
from tests import factories

runner = CliRunner()


@pytest.fixture
def store(empty_store):
    engine = empty_store
    view = NodeView(
        name="gpu-01",
        state=NodeState.ONLINE,
        state_since=factories.TS,
        hello=factories.hello(),
        latest={"connections": 3, "cpu_util_pct": 12.0},
    )
    with engine.begin() as conn:
        node_rows.save_nodes(conn, [view])
    return engine.url


def invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize("command", ["submit", "jobs", "job", "cancel", "pick"])
def test_every_job_command_has_help(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_submit_answers_id_and_estimate_and_is_durable(store):
    before = time.time()
    result = invoke(
        "submit", "--json", "--gpus", "1", "--runtime", "30m", "--deadline", "2h",
        "--label", "rack=r1", "--name", "train", "--", "python", "train.py", "--lr", "0.1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert (answer["node"], answer["basis"], answer["at_risk"]) == ("gpu-01", "now", False)
    assert answer["expected_finish"] - answer["expected_start"] == 1800
    assert before + 7200 <= answer["deadline"] <= time.time() + 7200
    (listed,) = json.loads(invoke("jobs", "--json").output)
    assert (listed["id"], listed["state"], listed["name"]) == (answer["id"], "pending", "train")
    details = json.loads(invoke("job", answer["id"], "--json").output)
    assert details["job"]["argv"] == ["python", "train.py", "--lr", "0.1"]
    assert [e["kind"] for e in details["events"]] == ["submitted"]


def test_submit_table_says_when_a_deadline_is_at_risk(store):
    result = invoke("submit", "--runtime", "2h", "--deadline", "1h", "--", "true")
    assert result.exit_code == 0
    assert "AT RISK" in result.output
    assert "predicted: gpu-01 at the next pass" in result.output


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--gpus", "2"], "no node in the fleet could ever run it (gpus on 1 node)"),
        (["--label", "rack=r9"], "(labels on 1 node)"),
        (["--mem", "4X"], "not a size: '4X'"),
        (["--runtime", "soon"], "--runtime: not a duration"),
        (["--runtime", "0"], "--runtime must be more than 0"),
        (["--deadline", "tomorrow-ish"], "--deadline 'tomorrow-ish': expected"),
        (["--cpus", "-1"], "--cpus and --gpus must be 0 or more"),
        (["--label", "nolabel"], "expected key=value"),
    ],
)
def test_submit_refuses_bad_requests_with_one_line_and_queues_nothing(store, args, reason):
    result = invoke("submit", *args, "--", "true")
    assert result.exit_code == 2
    assert reason in result.output
    assert json.loads(invoke("jobs", "--json").output) == []


def test_cancel_pending_then_again(store):
    job_id = json.loads(invoke("submit", "--json", "--", "sleep", "9").output)["id"]
    result = invoke("cancel", job_id)
    assert (result.exit_code, result.output.strip()) == (0, f"job {job_id} cancelled")
    again = invoke("cancel", job_id)
    assert again.exit_code == 2
    assert "already ended (cancelled)" in again.output
    assert invoke("cancel", "nope").exit_code == 2
    states = json.loads(invoke("jobs", "--json", "--state", "cancelled").output)
    assert [j["id"] for j in states] == [job_id]


def test_jobs_refuses_an_unknown_state_and_job_an_unknown_id(store):
    result = invoke("jobs", "--state", "sleeping")
    assert result.exit_code == 2
    assert "unknown state 'sleeping'" in result.output
    assert invoke("job", "nope").exit_code == 2


def test_pick_least_connections_and_exit_3(store):
    picked = json.loads(invoke("pick", "--json", "--gpus", "1").output)
    assert picked == {
        "node": "gpu-01",
        "connections": 3,
        "jobs": 0,
        "util_pct": 12.0,
        "free_gpus": [0],
        "strategy": "least-connections",
        "owner": None,
        "spilled": None,
    }
    assert invoke("pick").output.strip() == "gpu-01"
    none = invoke("pick", "--gpus", "2")
    assert none.exit_code == 3
    assert "could ever take" in none.output


def test_the_jobs_noun_offers_the_same_commands_as_the_shortcuts(store):
    answer = json.loads(invoke("jobs", "submit", "--json", "--", "sleep", "9").output)
    shown = json.loads(invoke("jobs", "show", answer["id"], "--json").output)
    assert shown == json.loads(invoke("job", answer["id"], "--json").output)
    assert shown["job"]["argv"] == ["sleep", "9"]
    assert json.loads(invoke("jobs", "pick", "--json").output)["node"] == "gpu-01"
    assert invoke("jobs", "cancel", answer["id"]).exit_code == 0
    (listed,) = json.loads(invoke("jobs", "--json").output)
    assert listed["state"] == "cancelled"
    assert invoke("jobs", "show", "nope").exit_code == 2


@pytest.fixture
def two_nodes(empty_store):
    views = [
        NodeView(
            name=name, state=NodeState.ONLINE, state_since=factories.TS, hello=factories.hello(name)
        )
        for name in ("gpu-01", "gpu-02")
    ]
    with empty_store.begin() as conn:
        node_rows.save_nodes(conn, views)
    return empty_store


def test_round_robin_takes_turns_across_separate_invocations(two_nodes):
    turns = [
        json.loads(invoke("pick", "--strategy", "round-robin", "--json").output)["node"]
        for _ in range(4)
    ]
    assert turns == ["gpu-01", "gpu-02", "gpu-01", "gpu-02"]


def test_affinity_answers_the_owner_and_notes_the_traffic(two_nodes):
    first = json.loads(invoke("pick", "--strategy", "affinity", "--key", "alice", "--json").output)
    assert (first["strategy"], first["owner"], first["spilled"]) == ("affinity", True, None)
    again = json.loads(invoke("pick", "--strategy", "affinity", "--key", "alice", "--json").output)
    assert again["node"] == first["node"]
    with two_nodes.connect() as conn:
        assert set(pick_rows.affinity_since(conn, 0.0)) == {first["node"]}
    p2c = json.loads(invoke("pick", "--strategy", "p2c", "--json").output)
    assert p2c["node"] in {"gpu-01", "gpu-02"}


def test_bad_strategies_are_refused_in_one_line(two_nodes):
    no_key = invoke("pick", "--strategy", "affinity")
    assert no_key.exit_code == 2
    assert "--strategy affinity needs --key" in no_key.output
    unknown = invoke("pick", "--strategy", "random")
    assert unknown.exit_code == 2
    assert "expected one of least-connections, round-robin, affinity, p2c" in unknown.output


def test_a_deadline_in_the_past_is_refused(store):
    result = invoke("submit", "--deadline", "2020-01-01T00:00:00", "--", "true")
    assert result.exit_code == 2
    assert "--deadline 2020-01-01T00:00:00 is in the past" in result.output
    assert json.loads(invoke("jobs", "--json").output) == []


def test_without_a_command_key_submit_warns_and_job_says_why(store, tmp_path, monkeypatch):
    monkeypatch.setenv("DORMOUSE_COMMAND_KEY_FILE", str(tmp_path / "missing.key"))
    result = invoke("submit", "--json", "--", "true")
    assert result.exit_code == 0, result.output
    assert "warning" in result.stderr
    assert "no command key" in result.stderr
    answer = json.loads(result.stdout)
    assert "missing.key" in answer["held"]
    shown = json.loads(invoke("job", answer["id"], "--json").stdout)
    assert "no command key" in shown["job"]["waiting"]


def test_the_coordinators_own_figure_decides_over_the_local_key(store, tmp_path, monkeypatch):
    """A user's CLI may not read the coordinator's key; the coordinator's figure says."""
    monkeypatch.setenv("DORMOUSE_COMMAND_KEY_FILE", str(tmp_path / "missing.key"))
    engine = sa.create_engine(store)
    with engine.begin() as conn:
        stat_rows.write_stats(conn, {HELD_NO_KEY: 0.0}, time.time())
    assert "warning" not in invoke("submit", "--", "true").stderr
    with engine.begin() as conn:
        stat_rows.write_stats(conn, {HELD_NO_KEY: 1.0}, time.time())
    status = invoke("status")
    assert status.exit_code == 0
    assert "jobs are not being placed: the coordinator has no command key" in status.stderr
    engine.dispose()


def test_submit_says_when_a_tariff_holds_the_job_and_why(store, monkeypatch, tmp_path):
    """The price is three times higher this hour and the next (local time): an hour's job
    due in 10 h is held to the start of the hour after, and the answer says so."""
    hour = time.localtime().tm_hour
    expensive = {hour, (hour + 1) % 24}
    rows = [f"{h},{0.3 if h in expensive else 0.1}" for h in range(24)]
    tariff = tmp_path / "tou.csv"
    tariff.write_text("\n".join(["hour,price", *rows]) + "\n")
    monkeypatch.setenv("DORMOUSE_COST_TARIFF", str(tariff))
    args = ("submit", "--runtime", "1h", "--deadline", "10h", "--gpus", "1")
    result = invoke(*args, "--json", "--", "train")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    local = time.localtime()
    hour_start = time.mktime((*local[:4], 0, 0, *local[6:]))  # this hour, local time
    assert answer["deferred_until"] == pytest.approx(hour_start + 2 * 3600)
    assert answer["expected_start"] == pytest.approx(answer["deferred_until"])
    assert "67% lower" in answer["deferred_because"]
    table = invoke(*args, "--", "train")
    assert "held until" in table.output
    assert "67% lower" in table.output
    # no slack, no hold
    answer = json.loads(invoke("submit", "--runtime", "1h", "--json", "--", "x").output)
    assert answer["deferred_until"] is None


def test_submit_refuses_a_bad_tariff_in_one_line_and_queues_nothing(store, monkeypatch, tmp_path):
    monkeypatch.setenv("DORMOUSE_COST_TARIFF", str(tmp_path / "missing.csv"))
    result = invoke("submit", "--", "x")
    assert result.exit_code != 0
    assert "tariff" in result.output
    assert "missing.csv" in result.output
    assert json.loads(invoke("jobs", "--json").output) == []
