"""The architecture, checked: the CLI does not load the daemon, and each room imports only
what its ring allows (docs/design.md, "Layout")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_purity import imported_roots

ROOT = Path(__file__).parents[2]
CLI = sorted((ROOT / "coordinator" / "cli").glob("*.py"))
DAEMON_ONLY = ("aiomqtt", "paho", "prometheus_client", "wakeonlan", "amqtt")
PROBE = """
import json, sys
from coordinator.main import app
try:
    app(sys.argv[1:], prog_name="dormouse")
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def loaded_by(*argv: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running `dormouse ARGV`."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize("argv", [("jobs", "--help"), ("nodes", "--help"), ("--help",)])
def test_help_loads_no_daemon_mqtt_or_http(argv):
    modules = loaded_by(*argv)
    assert "coordinator.main" in modules  # the probe did load the CLI
    if argv[0] != "--help":  # a noun's help loads its module (and no other noun's)
        assert f"coordinator.cli.{argv[0]}" in modules
        assert {"coordinator.cli.jobs", "coordinator.cli.nodes"} - modules
    daemon = {
        m
        for m in modules
        if m.startswith("coordinator.daemon.") and m != "coordinator.daemon.entry"
    }
    assert daemon == set()
    assert {m.split(".")[0] for m in modules} & set(DAEMON_ONLY) == set()


def test_run_help_still_works_without_loading_the_daemon():
    modules = loaded_by("run", "--help")
    assert "coordinator.daemon.main" not in modules
    assert "aiomqtt" not in modules


def imports_of(path: Path) -> set[str]:
    import ast  # noqa: PLC0415

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", CLI, ids=lambda p: p.name)
def test_cli_modules_go_through_services(path):
    """No daemon, no SQL, no store rows in `cli/`: a command parses, calls a service, prints."""
    names = imports_of(path)
    assert not {n for n in names if n.startswith(("coordinator.daemon", "coordinator.store"))}
    assert not imported_roots(path) & {"sqlalchemy", "aiomqtt", "prometheus_client", "wakeonlan"}


def test_the_check_sees_a_daemon_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from coordinator.daemon.main import serve\nimport sqlalchemy as sa\n")
    assert "coordinator.daemon.main" in imports_of(probe)
    assert "sqlalchemy" in imported_roots(probe)


@pytest.mark.parametrize(
    "path", sorted((ROOT / "coordinator").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_the_coordinator_never_imports_the_agent(path):
    """What both programs need lives in `shared/` (e.g. the job directory's file names)."""
    assert "agent" not in imported_roots(path)
