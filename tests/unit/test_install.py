"""`dormouse-agent install` and the systemd units, checked by systemd-analyze."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.settings import AgentConfig
from coordinator.main import app as coordinator_app
from coordinator.settings import CoordinatorConfig
from shared.config import load_config
from shared.edge import install as install_module
from shared.edge.install import executable
from shared.unitfiles import AGENT, COORDINATOR, relaxed, render, shipped

ROOT = Path(__file__).parents[2]
runner = CliRunner()


def uncommented(text: str) -> str:
    return re.sub(r"^# (\w+ = )", r"\1", text, flags=re.MULTILINE)


def test_install_writes_the_unit_and_a_commented_config(tmp_path, monkeypatch):
    monkeypatch.delenv("DORMOUSE_CONFIG", raising=False)
    result = runner.invoke(app, ["install", "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "systemctl daemon-reload && systemctl enable --now dormouse-agent" in result.output
    assert "copy the coordinator's command key to /etc/dormouse/command.key" in result.output
    unit = (tmp_path / "etc/systemd/system/dormouse-agent.service").read_text()
    assert f"ExecStart={executable('dormouse-agent')} run --config /etc/dormouse/agent.toml" in unit
    config = tmp_path / "etc/dormouse/agent.toml"
    assert tomllib.loads(config.read_text()) == {"mqtt": {}}  # every key commented out
    defaults = tomllib.loads(uncommented(config.read_text()))
    path = tmp_path / "uncommented.toml"
    path.write_text(uncommented(config.read_text()))
    assert load_config(AgentConfig, path=path, env={}) == AgentConfig()  # every default, as is
    assert {"node", "broker", "sleep_method", "job_user", "macs"} <= set(defaults)


def test_install_keeps_an_existing_config_and_installs_a_given_one(tmp_path):
    mine = tmp_path / "mine.toml"
    mine.write_text('node = "gpu-07"\nsleep_method = "rtcwake"\n')
    root = tmp_path / "root"
    first = runner.invoke(app, ["install", "--root", str(root), "--config", str(mine)])
    assert first.exit_code == 0, first.output
    assert (root / "etc/dormouse/agent.toml").read_text() == mine.read_text()
    again = runner.invoke(app, ["install", "--root", str(root)])
    assert "kept the existing" in again.output
    assert (root / "etc/dormouse/agent.toml").read_text() == mine.read_text()


def test_install_refuses_a_bad_config(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('sleep_method = "hibernate-please"\n')
    result = runner.invoke(app, ["install", "--root", str(tmp_path / "r"), "--config", str(bad)])
    assert result.exit_code == 2
    assert "sleep_method" in result.output
    assert not (tmp_path / "r").exists()


def test_the_shipped_units_are_the_rendered_templates():
    units = ROOT / "systemd"
    assert (units / "dormouse-agent.service").read_text() == render(
        AGENT, shipped("dormouse-agent"), "/etc/dormouse/agent.toml"
    )
    assert (units / "dormouse-coordinator.service").read_text() == render(
        COORDINATOR, shipped("dormouse"), "/etc/dormouse/coordinator.toml"
    )


def test_dormouse_install_writes_the_coordinator_unit_and_config(tmp_path, monkeypatch):
    monkeypatch.delenv("DORMOUSE_CONFIG", raising=False)
    result = runner.invoke(coordinator_app, ["install", "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "dormouse key generate --out /etc/dormouse/command.key" in result.output
    assert "systemctl enable --now dormouse-coordinator" in result.output
    unit = (tmp_path / "etc/systemd/system/dormouse-coordinator.service").read_text()
    assert f"ExecStart={executable('dormouse')} run --config /etc/dormouse/coordinator.toml" in unit
    config = tmp_path / "etc/dormouse/coordinator.toml"
    assert all(table == {} for table in tomllib.loads(config.read_text()).values())  # commented
    path = tmp_path / "uncommented.toml"
    path.write_text(uncommented(config.read_text()))
    assert load_config(CoordinatorConfig, path=path, env={}) == load_config(
        CoordinatorConfig, env={}
    )


def test_install_into_an_unwritable_root_is_one_line(tmp_path):
    result = runner.invoke(coordinator_app, ["install", "--root", "/proc/nope"])
    assert result.exit_code == 2
    assert result.output.startswith("dormouse: error: install:")
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verify_passes_on_the_shipped_units_as_shipped():
    units = [
        str(ROOT / "systemd" / n)
        for n in ("dormouse-agent.service", "dormouse-coordinator.service")
    ]
    result = subprocess.run(
        ["systemd-analyze", "verify", *units], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verify_passes_on_both_units(tmp_path):
    """Rendered with this installation's executables (verify checks ExecStart exists);
    a warning on stderr fails the test as an error would."""
    bin_dir = Path(sys.executable).parent
    units = {
        "dormouse-agent.service": render(AGENT, str(bin_dir / "dormouse-agent"), "/etc/a.toml"),
        "dormouse-coordinator.service": render(
            COORDINATOR, str(bin_dir / "dormouse"), "/etc/c.toml"
        ),
    }
    for name, text in units.items():
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / n) for n in units)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    for text in units.values():
        assert "Type=notify" in text
        assert "WatchdogSec=" in text
        assert "Restart=on-failure" in text
        assert "StateDirectory=" in text


@pytest.mark.parametrize(
    ("program", "expected", "kept"),
    [
        ("/opt/dormouse/bin/dormouse", [], ["ProtectHome=yes", "PrivateTmp=yes"]),
        ("/home/ops/dormouse/.venv/bin/dormouse", ["ProtectHome=read-only"], ["PrivateTmp=yes"]),
        ("/root/.venv/bin/dormouse", ["ProtectHome=read-only"], ["PrivateTmp=yes"]),
        ("/tmp/x/.venv/bin/dormouse", ["PrivateTmp=no"], ["ProtectHome=yes"]),
    ],
)
def test_a_unit_never_hides_its_own_executable(program, expected, kept):
    """A venv under /home or /tmp (an install from a checkout) would be invisible to a
    service with ProtectHome= or PrivateTmp=: the unit relaxes just that one, and says so."""
    unit, notes = relaxed(render(COORDINATOR, program, "/etc/c.toml"), program)
    for line in expected:
        assert f"\n{line}\n" in unit
    for line in kept:
        assert f"\n{line}\n" in unit
    assert len(notes) == len(expected)
    assert all(program in note for note in notes)
    agent, nothing = relaxed(render(AGENT, program, "/etc/a.toml"), program)
    assert (agent, nothing) == (render(AGENT, program, "/etc/a.toml"), [])  # it has neither


def test_install_from_a_home_directory_says_what_it_relaxed(tmp_path, monkeypatch):
    monkeypatch.delenv("DORMOUSE_CONFIG", raising=False)
    monkeypatch.setattr(install_module, "executable", lambda _: "/home/ops/.venv/bin/dormouse")
    result = runner.invoke(coordinator_app, ["install", "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "note: /home/ops/.venv/bin/dormouse is under /home: the unit says" in result.output
    unit = (tmp_path / "etc/systemd/system/dormouse-coordinator.service").read_text()
    assert "\nProtectHome=read-only\n" in unit
    assert "\nProtectHome=yes" not in unit
