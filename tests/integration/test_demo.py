"""The README's first command: `dormouse demo` runs its in-process broker, the coordinator,
a real agent and simulated ones, ends with a summary, and leaves no process behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import sqlalchemy as sa


def leftovers(workdir: Path, *, besides: int | None = None) -> list[int]:
    """Processes whose command line mentions the demo's directory (agents, job wrappers):
    read here to check the demo left none; never used to choose what to stop."""
    mine, found = str(workdir), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in {os.getpid(), besides}:
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if mine in argv:
                found.append(int(entry.name))
    return found


def demo(tmp_path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coordinator",
            "demo",
            "--dir",
            str(tmp_path / "d"),
            "--json",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_short_demo_runs_jobs_sleeps_nodes_and_cleans_up(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "vm.log").touch()
    watcher = subprocess.Popen(["tail", "-F", str(tmp_path / "d" / "vm.log")])  # not the demo's
    process = demo(tmp_path, "--duration", "20s", "--nodes", "3")
    out, err = process.communicate(timeout=120)
    assert watcher.poll() is None, "the demo stopped a process it did not start"
    watcher.kill()
    watcher.wait()
    assert process.returncode == 0, err
    summary = json.loads(out)
    assert summary["nodes"] == 4  # this host and three simulated
    assert summary["samples_stored"] > 0
    assert summary["jobs_run"] >= 2
    assert summary["deadlines_met"] == summary["jobs_run"]
    assert summary["sleeps"] >= 1
    assert leftovers(tmp_path / "d") == []
    assert "Traceback" not in err


def stored(workdir: Path, sql: str) -> int:
    """A count from the demo's own SQLite store (0 while it is not there yet)."""
    engine = sa.create_engine(f"sqlite:///{workdir / 'dormouse.db'}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(sql)).scalar_one())
    except sa.exc.OperationalError:
        return 0
    finally:
        engine.dispose()


def test_ctrl_c_ends_it_with_a_summary_and_nothing_left(tmp_path):
    """Ctrl-C once every node has been seen (not after a fixed sleep, which a loaded
    machine may not honour), then the summary counts them all."""
    process = demo(tmp_path, "--duration", "120s", "--nodes", "2")
    deadline = time.monotonic() + 90
    while stored(tmp_path / "d", "SELECT count(*) FROM nodes WHERE last_seen IS NOT NULL") < 3:
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "the demo's three nodes never all reported"
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    summary = json.loads(out)
    assert summary["seconds"] < 100
    assert summary["nodes"] == 3
    assert leftovers(tmp_path / "d") == []
    assert "Traceback" not in err


def test_a_second_run_in_the_same_directory_counts_only_its_own(tmp_path):
    runs = []
    for _ in range(2):
        process = demo(tmp_path, "--duration", "12s", "--nodes", "1")
        out, err = process.communicate(timeout=90)
        assert process.returncode == 0, err
        assert "Traceback" not in err
        runs.append(json.loads(out))
    total = stored(tmp_path / "d", "SELECT count(*) FROM jobs")
    assert runs[0]["jobs_submitted"] > 0
    assert runs[1]["jobs_submitted"] == total - runs[0]["jobs_submitted"]
    assert runs[1]["nodes"] == 2
    assert any("no power sensor" in c for c in runs[1]["caveats"]) or runs[1]["kwh"] > 0


def test_the_demo_serves_its_console_and_api(tmp_path):
    """It prints the console's address (a read token in the fragment) and serves the API."""
    process = demo(tmp_path, "--duration", "15s", "--nodes", "1")
    try:
        deadline, url = time.monotonic() + 60, None
        while url is None and time.monotonic() < deadline:
            line = process.stderr.readline() if process.stderr else ""
            assert line or process.poll() is None, "the demo ended before printing the console"
            if line.startswith("web console: "):
                url = line.split(": ", 1)[1].strip()
        assert url is not None
        base, token = url.split("#token=")
        request = urllib.request.Request(
            f"{base}api/v1/nodes", headers={"Authorization": f"Bearer {token}"}
        )
        nodes: list[dict] = []
        while not nodes and time.monotonic() < deadline:
            with urllib.request.urlopen(request, timeout=10) as response:
                nodes = json.loads(response.read())["nodes"]
            time.sleep(0.5)
        assert nodes, "no node in the API"
        with urllib.request.urlopen(base, timeout=10) as response:
            assert b"<title>dormouse</title>" in response.read()
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert json.loads(out)["console_url"] == url
