"""The lean `dormouse-agent run` entry: the typer command's flags and refusals, without
typer, rich, OpenSSL's hashlib or (for plain MQTT) ssl in the daemon."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer.main

from agent import cli
from agent.main import RUN_FLAGS

HEAVY = ["typer", "click", "rich", "ssl", "_ssl", "_hashlib", "http.client", "email"]
PREPARE = """
import json, sys
from agent import main
main._builtin_hashes()
main._deferred("urllib.request")
{tls}
import agent.service, hashlib, hmac
assert hmac.new(b"k", b"m", hashlib.sha256).hexdigest().startswith("b60090e3")
print(json.dumps({{m: sys.modules.get(m) is not None for m in {heavy!r}}}))
"""


def loaded(tls: bool) -> dict[str, bool]:
    code = PREPARE.format(tls="" if tls else "main._without_ssl()", heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(done.stdout)


def test_the_plain_mqtt_daemon_loads_none_of_the_heavy_modules():
    assert loaded(tls=False) == dict.fromkeys(HEAVY, False)


def test_an_mqtts_daemon_loads_ssl_and_still_no_cli():
    found = loaded(tls=True)
    assert (found["ssl"], found["typer"], found["rich"], found["_hashlib"]) == (
        True,
        False,
        False,
        False,
    )


def test_run_takes_the_typer_commands_flags():
    run = typer.main.get_command(cli.app).commands["run"]
    typed = {p.name for p in run.params}
    assert typed == {"config", *RUN_FLAGS}


def agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--interval", "soon"],
            "dormouse-agent: error: interval (from command line): not a duration: 'soon' "
            "(use e.g. 30s, 5m, 2h, 1d or 1h30m)",
        ),
        (
            ["--bogus"],
            "dormouse-agent run: error: unrecognized arguments: --bogus "
            "(see dormouse-agent run --help)",
        ),
        (["--node"], "dormouse-agent run: error: argument --node: expected one argument"),
        (
            ["--broker", "http://x"],
            "dormouse-agent: error: broker (from command line): ",
        ),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(args, line):
    done = agent("run", *args)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(line)


def test_a_directory_as_config_is_refused(tmp_path):
    done = agent("run", "--config", str(tmp_path))
    assert (done.returncode, done.stderr.strip()) == (
        2,
        f"dormouse-agent: error: --config {tmp_path}: is a directory, not a TOML file",
    )


def test_help_and_every_other_command_are_the_typer_cli():
    done = agent("run", "--help")
    assert done.returncode == 0
    assert "Run the agent daemon" in done.stdout
    assert agent("--version").returncode == 0
