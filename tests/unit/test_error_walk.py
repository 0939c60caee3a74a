"""One error style everywhere: a bad value for any option of any command (both CLIs), a
missing argument, an unknown command or option, each end in one line on stderr, `PROG:
error: REASON`, exit 2, and nothing on stdout; never click's boxed usage panel."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from agent.cli import app as agent_app
from coordinator.main import app as coordinator_app
from tests.unit.test_help import CASES

runner = CliRunner()
BAD = {  # by click's type name; text options check their own (the table below)
    "int": "x1",
    "int range": "-5",
    "float": "x1.5.2",
    "file": "/nonexistent/dormouse-walk.toml",
}


def bad_options(cases: list) -> list[tuple[typer.Typer, list[str], str, str, list[str]]]:
    """(app, command path, option, a bad value, the command's arguments) for every option
    that checks its type, with a stand-in for each argument the command requires (so the
    bad value, not a missing argument, is what the error is about)."""
    found = []
    for app, path, command in cases:
        if any(p.required for p in command.params if p.param_type_name == "option"):
            continue  # the required option would be the error (simulate's --trace)
        needed = [p for p in command.params if p.param_type_name == "argument" and p.required]
        args = [a for p in needed for a in (["--", "true"] if p.nargs == -1 else ["x"])]
        for param in command.params:
            kind = getattr(param.type, "name", "")
            if param.param_type_name == "option" and not param.is_flag and kind in BAD:
                found.append((app, path, param.opts[0], BAD[kind], args))
    return found


OPTIONS = bad_options(CASES)


def one_line_error(app: typer.Typer, args: list[str], tmp_path: Any) -> str:
    env = {"DORMOUSE_DB": f"sqlite:///{tmp_path / 'walk.db'}", "DORMOUSE_CONFIG": ""}
    result = runner.invoke(app, args, env=env)
    prog = "dormouse-agent" if app is agent_app else "dormouse"
    assert result.exit_code == 2, (args, result.output)
    assert result.stdout == "", (args, result.stdout)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, (args, result.stderr)
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    return lines[0]


def test_the_walk_covers_every_kind_and_both_clis():
    kinds = {value for _, _, _, value, _ in OPTIONS}
    assert kinds == set(BAD.values())
    assert {app for app, *_ in OPTIONS} == {coordinator_app, agent_app}
    assert len(OPTIONS) >= 60


@pytest.mark.parametrize(
    "case", OPTIONS, ids=[f"{' '.join(p) or '(root)'} {o}" for _, p, o, _, _ in OPTIONS]
)
def test_a_bad_option_value_is_one_line(case, tmp_path):
    app, path, option, value, args = case
    said = one_line_error(app, [*path, option, value, *args], tmp_path)
    assert option in said or value in said


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["history", "--node", "n", "--metric", "cpu_util_pct", "--since", "yesterday"], "--since"),
        (["history", "--metric", "cpu_util_pct", "--step", "abc"], "--step"),
        (["submit", "--deadline", "10x", "--", "true"], "--deadline"),
        (["submit", "--runtime", "abc", "--", "true"], "--runtime"),
        (["submit", "--mem", "lots", "--", "true"], "--mem"),
        (["submit", "--label", "noequals", "--", "true"], "label"),
        (["submit", "--runtime", "1m"], "Missing argument"),
        (["report", "--since", "abc"], "--since"),
        (["jobs", "queue"], "No such command 'queue'"),
        (["frobnicate"], "No such command 'frobnicate'"),
        (["nodes", "--bogus"], "No such option: --bogus"),
        (["report", "--by", "team"], "--by"),
        (["history", "--metric", "cpu_util_pct", "--label", "noequals"], "--label"),
        (["history", "--metric", "cpu_util_pct", "--by", "rack"], "--by"),
        (["history", "--metric", "cpu_util_pct", "--agg", "median"], "agg"),
        (["pick", "--strategy", "random"], "strategy"),
    ],
)
def test_durations_sizes_labels_and_usage_mistakes_are_one_line(args, says, tmp_path):
    assert says in one_line_error(coordinator_app, args, tmp_path)


def test_the_agent_cli_too(tmp_path):
    assert "No such command 'frob'" in one_line_error(agent_app, ["frob"], tmp_path)
