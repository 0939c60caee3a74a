"""`dormouse report`, `sleep`, `wake`, `clear`, `power-events` in process: arguments, exit
codes, and what reaches the store."""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from coordinator.core.jobstate import JobRecord, JobState
from coordinator.core.nodestate import NodeState
from coordinator.core.registry import NodeView
from coordinator.main import app
from coordinator.store import jobs as job_rows
from coordinator.store import nodes as node_rows
from coordinator.store import power as power_rows
from coordinator.store.power import PowerEvent
from tests import factories

runner = CliRunner()


@pytest.fixture
def store(empty_store):
    view = NodeView(name="gpu-01", state=NodeState.ONLINE, state_since=0.0, hello=factories.hello())
    with empty_store.begin() as conn:
        node_rows.save_nodes(conn, [view])
    return empty_store


def invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize("command", ["sleep", "wake", "clear", "power-events", "report"])
def test_every_power_command_has_help(command):
    assert invoke(command, "--help").exit_code == 0


def test_report_charges_fixed_costs_and_exits_4_over_budget(store, monkeypatch):
    monkeypatch.setenv("DORMOUSE_COST_FIXED_PER_NODE_HOUR", "2")
    result = invoke("report", "--since", "1h", "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["nodes"][0]["fixed_cost"] == pytest.approx(2.0)
    assert figures["budget"] is None
    assert figures["caveats"] == [
        "1 of 1 nodes have no power sensor (RAPL or NVML): their energy is not measured and "
        "counts as 0 kWh"
    ]
    assert "note: 1 of 1 nodes have no power sensor" in invoke("report", "--since", "1h").output
    monkeypatch.setenv("DORMOUSE_COST_BUDGET", "1")  # a day of a node at 2/h is over 1
    over = invoke("report", "--check-budget", "--json")
    assert over.exit_code == 4
    assert json.loads(over.output)["budget"]["over"] is True
    monkeypatch.setenv("DORMOUSE_COST_BUDGET", "100000")
    assert invoke("report", "--check-budget").exit_code == 0


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["report", "--since", "soon"], "--since"),
        (["report", "--price-kwh", "-1"], "--price-kwh must be 0 or more"),
        (["report", "--check-budget"], "no budget configured"),
        (["sleep", "nope"], "unknown node 'nope'"),
        (["wake", "gpu-01", "--wait", "0s"], "--wait must be more than 0"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(store, args, reason):
    result = invoke(*args)
    assert result.exit_code == 2
    assert reason in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_request_no_coordinator_answers_says_so(store):
    result = invoke("sleep", "gpu-01", "--wait", "0.3s")
    assert result.exit_code == 1
    assert "is `dormouse run` running?" in result.output
    with store.connect() as conn:
        (request,) = power_rows.open_requests(conn)
    assert (request.node, request.action, request.force) == ("gpu-01", "sleep", False)


def test_power_events_are_listed_oldest_first(store):
    now = time.time()
    with store.begin() as conn:
        power_rows.log_events(
            conn,
            [
                PowerEvent(now - 5, "gpu-01", "sleep", "idle for 900s"),
                PowerEvent(now - 1, "gpu-01", "asleep", "quiet after sleeping"),
            ],
        )
    rows = json.loads(invoke("power-events", "--json").output)
    assert [r["kind"] for r in rows] == ["sleep", "asleep"]
    assert rows[0]["reason"] == "idle for 900s"


def test_power_events_under_the_power_noun_and_as_the_shortcut(store):
    with store.begin() as conn:
        power_rows.log_events(conn, [PowerEvent(5.0, "gpu-01", "sleep", "idle 900s")])
    rows = json.loads(invoke("power", "events", "--json").output)
    assert rows == json.loads(invoke("power-events", "--json").output)
    assert [(r["node"], r["kind"], r["reason"]) for r in rows] == [("gpu-01", "sleep", "idle 900s")]


def test_a_power_request_for_an_unknown_node_is_refused_before_it_is_queued(store):
    result = invoke("power", "sleep", "nosuch", "--wait", "1s")
    assert result.exit_code == 2
    assert "unknown node 'nosuch'" in result.output
    with store.connect() as conn:
        assert power_rows.open_requests(conn) == []


def test_power_events_of_an_unknown_node_is_an_error_not_an_empty_table(store):
    result = invoke("power-events", "--node", "nosuch")
    assert result.exit_code == 2
    assert "unknown node 'nosuch'" in result.output
    assert invoke("power-events", "--node", "gpu-01").exit_code == 0


def test_node_shows_its_measured_wake_times(store):
    assert json.loads(invoke("node", "gpu-01", "--json").output)["wakes_measured"] == 0
    with store.begin() as conn:
        power_rows.log_events(
            conn,
            [PowerEvent(100.0 + i, "gpu-01", "resumed", "back", float(s)) for i, s in
             enumerate(range(10, 30))],
        )  # fmt: skip
    shown = json.loads(invoke("node", "gpu-01", "--json").output)
    assert (shown["wakes_measured"], shown["wake_p50_s"], shown["wake_p95_s"]) == (20, 19.0, 28.0)


def finished_job(job_id: str, energy_j: float | None, cpus: int = 2) -> JobRecord:
    now = time.time()
    return JobRecord(
        id=job_id,
        argv=("train",),
        submitted_at=now - 1900,
        cpus=cpus,
        state=JobState.SUCCEEDED,
        node="gpu-01",
        started_at=now - 1800,
        finished_at=now - 600,
        energy_j=energy_j,
        exit_code=0,
    )


def test_report_by_job_and_job_show_each_jobs_own_energy_and_cost(store, monkeypatch):
    monkeypatch.setenv("DORMOUSE_COST_PRICE_KWH", "0.5")
    with store.begin() as conn:
        job_rows.insert(conn, finished_job("big", 7.2e6), time.time())
        job_rows.insert(conn, finished_job("small", 3.6e6), time.time())
        job_rows.insert(conn, finished_job("unmetered", None), time.time())
    result = invoke("report", "--by", "job", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["job"], r["jobs"], r["kwh"], r["cost"]["energy"]) for r in rows] == [
        ("big", 1, 2.0, 1.0),
        ("small", 1, 1.0, 0.5),
        ("unmetered", 1, 0.0, 0.0),
    ]
    table = invoke("report", "--by", "job").output
    assert "big" in table
    assert "U_total_pct" in table  # the fleet's utilisation under the rows
    by_node = json.loads(invoke("report", "--by", "node", "--json").output)
    assert [(r["node"], r["jobs"], r["kwh"]) for r in by_node] == [("gpu-01", 3, 3.0)]
    shown = json.loads(invoke("job", "big", "--json").output)
    assert (shown["energy_j"], shown["kwh"], shown["cost"]) == (7.2e6, 2.0, 1.0)
    assert shown["job"]["energy_j"] == 7.2e6
    assert "kwh" in invoke("job", "big").output


def test_report_by_refuses_what_it_does_not_know(store):
    result = invoke("report", "--by", "rack")
    assert result.exit_code == 2
    assert "--by must be one of all, account, user, node, job, not 'rack'" in result.output


def test_report_weighs_deadline_hits_by_gpu_hours(store):
    """One 8-GPU job of 2 h met its deadline, three 1-GPU jobs of 1 h missed theirs:
    25 % of the jobs, 16 / 19 of the GPU-hours."""
    now = time.time()
    ended = [("big", 8, 7200.0, True)] + [(f"small{i}", 1, 3600.0, False) for i in range(3)]
    with store.begin() as conn:
        for job_id, gpus, runtime, met in ended:
            record = JobRecord(
                id=job_id, argv=("x",), submitted_at=now - runtime - 60, gpus=gpus,
                deadline=now if met else now - 120, state=JobState.SUCCEEDED, node="gpu-01",
                started_at=now - runtime - 30, finished_at=now - 30, deadline_met=met,
            )  # fmt: skip
            job_rows.insert(conn, record, now)
    result = invoke("report", "--since", "1d", "--json")
    assert result.exit_code == 0, result.output
    deadlines = json.loads(result.output)["deadlines"]
    assert deadlines["jobs"] == 4
    assert deadlines["hits_pct"] == pytest.approx(25.0)
    assert deadlines["hits_gpu_h_pct"] == pytest.approx(100 * 16 / 19)
    text = invoke("report", "--since", "1d").output
    assert "deadlines: 4 job(s) ended with one, 25.0 % met (84.2 % of their GPU-hours)" in text
