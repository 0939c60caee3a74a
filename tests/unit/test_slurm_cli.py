"""`dormouse slurm suspend|resume|resume-fail HOSTLIST` in process: what reaches the store,
the node map, the log line, and the one-line refusals Slurm's programs must give."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coordinator.core.nodestate import NodeState
from coordinator.core.registry import NodeView
from coordinator.main import app
from coordinator.store import nodes as node_rows
from coordinator.store import power as power_rows
from tests import factories

runner = CliRunner()


@pytest.fixture
def store(empty_store, tmp_path, monkeypatch):
    monkeypatch.setenv("DORMOUSE_SLURM_LOG_FILE", str(tmp_path / "slurm.log"))
    views = [
        NodeView(name=n, state=NodeState.ONLINE, state_since=0.0, hello=factories.hello(n))
        for n in ("gpu01", "gpu02", "lab-gpu07")
    ]
    with empty_store.begin() as conn:
        node_rows.save_nodes(conn, views)
    return empty_store


def requests(store):
    with store.connect() as conn:
        return [(r.node, r.action, r.force, r.source) for r in power_rows.open_requests(conn)]


def test_suspend_records_a_forced_sleep_per_known_node_and_logs_the_rest(store, tmp_path):
    started = time.monotonic()
    done = runner.invoke(app, ["slurm", "suspend", "gpu[01-03]"])
    assert time.monotonic() - started < 1.0  # Slurm waits on none of this
    assert done.exit_code == 0, done.output
    assert requests(store) == [
        ("gpu01", "sleep", True, "slurm SuspendProgram"),
        ("gpu02", "sleep", True, "slurm SuspendProgram"),
    ]
    (line,) = (tmp_path / "slurm.log").read_text().splitlines()
    assert line.endswith("suspend gpu[01-03]: recorded 2 (gpu01 gpu02); not dormouse nodes: gpu03")


def test_resume_and_resume_fail_wake_through_the_node_map(store, monkeypatch):
    monkeypatch.setenv("DORMOUSE_SLURM_NODE_MAP", "gpu07=lab-gpu07")
    assert runner.invoke(app, ["slurm", "resume", "gpu07"]).exit_code == 0
    assert runner.invoke(app, ["slurm", "resume-fail", "gpu[01,07]"]).exit_code == 0
    assert requests(store) == [
        ("lab-gpu07", "wake", True, "slurm ResumeProgram"),
        ("gpu01", "wake", True, "slurm ResumeFailProgram"),
        ("lab-gpu07", "wake", True, "slurm ResumeFailProgram"),
    ]


def test_a_bad_hostlist_is_one_line_and_records_nothing(store):
    refused = runner.invoke(app, ["slurm", "suspend", "gpu[01-"])
    assert refused.exit_code == 2
    assert refused.output.strip().splitlines() == [
        "dormouse: error: hostlist 'gpu[01-': '[' not closed"
    ]
    assert requests(store) == []


def test_an_unreachable_store_is_one_line_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("DORMOUSE_SLURM_LOG_FILE", str(tmp_path / "slurm.log"))
    monkeypatch.setenv("DORMOUSE_DB", "postgresql+psycopg://nobody@127.0.0.1:9/none")
    refused = runner.invoke(app, ["slurm", "resume", "gpu01"])
    assert refused.exit_code != 0
    (line,) = refused.output.strip().splitlines()
    assert line.startswith("dormouse: error: "), line
    assert not (tmp_path / "slurm.log").exists()


SACCT = Path(__file__).parents[1] / "fixtures" / "slurm" / "sacct-22.05.txt"


def test_advise_replays_the_history_against_never_sleeping(store):
    """The store's three nodes, its measured wakes sizing ResumeTimeout, the JSON a script
    reads."""
    with store.begin() as conn:
        power_rows.log_events(
            conn, [power_rows.PowerEvent(1.0, "gpu01", "resumed", "back", v) for v in (90, 400)]
        )
    done = runner.invoke(app, ["slurm", "advise", "--sacct", str(SACCT), "--json"])
    assert done.exit_code == 0, done.output
    answer = json.loads(done.stdout)
    assert answer["nodes"] == 3
    assert answer["jobs"] > 0
    names = [p["name"] for p in answer["policies"]]
    assert names == [
        "never sleep",
        "SuspendTime=10m",
        "SuspendTime=30m",
        "SuspendTime=1h",
        "dormouse",
    ]
    assert answer["policies"][0]["kwh_saved"] == 0
    assert answer["wakes"]["p99_s"] == 400
    assert answer["resume_timeout_s"] == 600  # 400 x 1.5
    assert "ResumeTimeout=600" in answer["slurm_conf"]
    assert answer["recommended"] in names


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--since", "soon"], "soon"),
        (["--suspend-times", ","], "--suspend-times"),
        (["--nodes", "0"], "--nodes"),
    ],
)
def test_advise_refuses_bad_arguments_in_one_line(store, args, said):
    done = runner.invoke(app, ["slurm", "advise", "--sacct", str(SACCT), *args])
    assert done.exit_code == 2, done.output
    assert said in done.output
    assert len(done.output.strip().splitlines()) == 1


def test_advise_says_when_sacct_cannot_be_run(store, monkeypatch):
    monkeypatch.setenv("DORMOUSE_SLURM_SACCT", "/nonexistent/sacct")
    done = runner.invoke(app, ["slurm", "advise", "--nodes", "2"])
    assert done.exit_code == 2, done.output
    assert "cannot run /nonexistent/sacct" in done.output
    assert "--sacct FILE" in done.output
