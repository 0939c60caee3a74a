"""Both command lines, run in-process with typer's CliRunner."""

from __future__ import annotations

import json
import stat

import pytest
from typer.testing import CliRunner

from agent.cli import app as agent_app
from agent.settings import AgentConfig
from coordinator.main import app as coordinator_app
from coordinator.settings import CoordinatorConfig
from shared.config import load_config, shown
from shared.edge.console import cell

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ("DORMOUSE_CONFIG", "DORMOUSE_BROKER", "DORMOUSE_DB", "DORMOUSE_NODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DORMOUSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DORMOUSE_COMMAND_KEY_FILE", str(tmp_path / "key"))


@pytest.mark.parametrize(
    ("app", "commands"),
    [(coordinator_app, ["config", "key", "version"]), (agent_app, ["config", "version"])],
)
def test_help_lists_the_commands(app, commands):
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in commands:
        assert command in result.output


@pytest.mark.parametrize("app", [coordinator_app, agent_app])
def test_sub_app_help(app):
    result = runner.invoke(app, ["config", "--help"])
    assert result.exit_code == 0
    assert "show" in result.output
    assert "check" in result.output


def test_config_show_json(tmp_path):
    result = runner.invoke(coordinator_app, ["config", "show", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["key"]: row for row in json.loads(result.output)}
    assert rows["broker"]["value"] == "mqtt://127.0.0.1:1883"
    assert rows["data_dir"]["value"] == str(tmp_path / "data")
    assert rows["broker"]["env"] == "DORMOUSE_BROKER"


def test_config_show_table():
    result = runner.invoke(agent_app, ["config", "show"])
    assert result.exit_code == 0
    assert "DORMOUSE_NODE" in result.output


def test_config_check_ok_and_bad(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('broker = "mqtt://broker.lan:1883"\n')
    result = runner.invoke(coordinator_app, ["config", "check", "-c", str(good)])
    assert result.exit_code == 0
    assert f"ok: {good}" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text('brokr = "mqtt://broker.lan:1883"\n')
    result = runner.invoke(coordinator_app, ["config", "check", "-c", str(bad)])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0
    assert "unknown key 'brokr'" in result.output


def test_bad_environment_exits_2_naming_the_variable(monkeypatch):
    monkeypatch.setenv("DORMOUSE_BROKER", "http://broker")
    result = runner.invoke(agent_app, ["config", "show"])
    assert result.exit_code == 2
    assert "environment DORMOUSE_BROKER" in result.output


def test_unknown_flag_exits_2():
    assert runner.invoke(coordinator_app, ["config", "show", "--bogus"]).exit_code == 2


def test_key_generate_writes_a_private_key_and_will_not_overwrite(tmp_path):
    result = runner.invoke(coordinator_app, ["key", "generate"])
    assert result.exit_code == 0, result.output
    key_file = tmp_path / "key"
    assert len(key_file.read_text().strip()) == 64
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = runner.invoke(coordinator_app, ["key", "generate"])
    assert again.exit_code == 2
    assert "--force" in again.output
    old = key_file.read_text()
    assert runner.invoke(coordinator_app, ["key", "generate", "--force"]).exit_code == 0
    assert key_file.read_text() != old


def test_version():
    assert runner.invoke(coordinator_app, ["version"]).output.startswith("dormouse 0.1.0")


@pytest.mark.parametrize(
    ("out", "reason"),
    [
        ("/proc/nope.key", "cannot write /proc/nope.key"),
        ("/nonexistent-dir/sub/command.key", "/nonexistent-dir does not exist"),
    ],
)
def test_key_generate_refuses_an_unwritable_path_in_one_line(out, reason):
    result = runner.invoke(coordinator_app, ["key", "generate", "--out", out])
    assert result.exit_code == 2
    assert reason in result.output
    assert isinstance(result.exception, SystemExit)  # not an uncaught error
    assert len(result.output.strip().splitlines()) == 1


def test_key_generate_says_which_directory_it_created(tmp_path):
    target = tmp_path / "etc-dormouse" / "command.key"
    result = runner.invoke(coordinator_app, ["key", "generate", "--out", str(target)])
    assert result.exit_code == 0, result.output
    assert f"created {target.parent}" in result.output
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o755


def test_key_generate_does_not_follow_a_symlink(tmp_path):
    """A dangling link is refused without --force, and replaced (not followed) with it."""
    elsewhere = tmp_path / "elsewhere.key"
    link = tmp_path / "command.key"
    link.symlink_to(elsewhere)
    refused = runner.invoke(coordinator_app, ["key", "generate", "--out", str(link)])
    assert refused.exit_code == 2
    assert "exists" in refused.output
    forced = runner.invoke(coordinator_app, ["key", "generate", "--out", str(link), "--force"])
    assert forced.exit_code == 0, forced.output
    assert not link.is_symlink()
    assert not elsewhere.exists()
    assert stat.S_IMODE(link.stat().st_mode) == 0o600


def test_config_show_spells_values_as_toml_an_operator_would_type(tmp_path):
    result = runner.invoke(coordinator_app, ["config", "show"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for python_repr in ("frozenset(", "('", " . "):
        assert python_repr not in result.output
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in
            result.output.splitlines() if line.count("│") >= 4}  # fmt: skip
    assert rows["retention.raw"] == '"1w"'
    assert rows["power.never_sleep"] == "[]"
    assert rows["mqtt.ca_file"] == '""'


@pytest.mark.parametrize("schema", [CoordinatorConfig, AgentConfig])
def test_every_shown_value_reads_back_as_the_same_setting(schema, tmp_path):
    defaults = load_config(schema, env={})
    tables: dict[str, list[str]] = {}
    for key, text, _, _ in shown(defaults):
        table, _, leaf = key.rpartition(".")
        tables.setdefault(table, []).append(f"{leaf} = {text}")
    toml = "\n".join(tables.pop("")) + "".join(
        f"\n[{table}]\n" + "\n".join(lines) for table, lines in tables.items()
    )
    path = tmp_path / "shown.toml"
    path.write_text(toml)
    assert load_config(schema, path=path, env={}) == defaults


@pytest.mark.parametrize(
    ("value", "shown"),
    [(2.0, "2"), (82.32323232323232, "82.32"), (0.00123, "0.00123"), (None, "-"), ("x", "x")],
)
def test_table_cells_read_as_people_write_numbers(value, shown):
    assert cell(value) == shown


def test_byte_counts_in_tables_use_binary_units():
    assert cell(1536, bytes_=True) == "1.5 KiB"
    assert cell(3 * 1024**3, bytes_=True) == "3.0 GiB"
    assert cell(12, bytes_=True) == "12 B"


@pytest.mark.parametrize(
    ("app", "name"), [(coordinator_app, "dormouse"), (agent_app, "dormouse-agent")]
)
def test_version_flag(app, name):
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"{name} 0.1.0\n"
