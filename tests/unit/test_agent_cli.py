"""`dormouse-agent` sample, check and run's argument handling, in-process."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from agent.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    for name in ("DORMOUSE_CONFIG", "DORMOUSE_BROKER", "DORMOUSE_NODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DORMOUSE_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("DORMOUSE_COMMAND_KEY_FILE", str(tmp_path / "key"))
    monkeypatch.setenv("DORMOUSE_JOBS_DIR", str(tmp_path / "jobs"))


def test_help_lists_run_sample_check():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "sample", "check", "config"):
        assert command in result.output


def test_sample_json_is_one_valid_sample_of_this_host():
    result = runner.invoke(app, ["sample", "--json", "--over", "50ms"])
    assert result.exit_code == 0, result.output
    sample = json.loads(result.output)
    assert 0 <= sample["metrics"]["cpu_util_pct"] <= 100
    assert sample["metrics"]["mem_total_bytes"] > 0
    assert isinstance(sample["gpus"], list)


def test_sample_table():
    result = runner.invoke(app, ["sample", "--over", "0s"])
    assert result.exit_code == 0
    assert "mem_total_bytes" in result.output


def test_check_fails_when_the_broker_is_unreachable(monkeypatch):
    monkeypatch.setenv("DORMOUSE_BROKER", "mqtt://127.0.0.1:1")
    result = runner.invoke(app, ["check", "--json"])
    assert result.exit_code == 1
    rows = {row["check"]: row for row in json.loads(result.output)}
    assert rows["broker"]["ok"] is False
    assert rows["broker"]["required"] is True
    assert rows["spool"]["ok"] is True
    assert rows["jobs"]["ok"] is True
    assert "0 running" in rows["jobs"]["detail"]
    assert rows["command key"]["ok"] is False
    assert "commands will be refused" in rows["command key"]["detail"]


def test_check_fails_when_the_spool_is_not_writable(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("DORMOUSE_SPOOL_DIR", str(blocker / "spool"))
    monkeypatch.setenv("DORMOUSE_BROKER", "mqtt://127.0.0.1:1")
    rows = {r["check"]: r for r in json.loads(runner.invoke(app, ["check", "--json"]).output)}
    assert rows["spool"]["ok"] is False


def test_check_fails_when_jobs_cannot_run(monkeypatch, tmp_path):
    monkeypatch.setenv("DORMOUSE_BROKER", "mqtt://127.0.0.1:1")
    monkeypatch.setenv("DORMOUSE_JOB_USER", "no-such-user-dormouse")
    listed = json.loads(runner.invoke(app, ["check", "--json"]).output)
    rows = {r["check"]: r for r in listed}
    assert len(rows) == len(listed)  # one row per name: `jobs` (the sampler), `jobs_dir`
    assert rows["jobs_dir"]["ok"] is False
    assert "no such user" in rows["jobs_dir"]["detail"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "soon"], "interval (from command line): not a duration"),
        (["--interval", "0s"], "interval (from command line): must be more than 0"),
        (["--node", "a/b"], "node (from command line): bad node name"),
        (["--broker", "http://x"], "broker (from command line): expected mqtt://"),
    ],
)
def test_run_refuses_bad_flags_with_exit_2_naming_the_key(args, message):
    result = runner.invoke(app, ["run", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_run_refuses_a_bad_config_key(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text("intervall = 1\n")
    result = runner.invoke(app, ["run", "--config", str(path)])
    assert result.exit_code == 2
    assert "unknown key 'intervall'" in result.output


def test_bad_duration_for_over():
    assert runner.invoke(app, ["sample", "--over", "later"]).exit_code == 2
