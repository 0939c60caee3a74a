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
from pathlib import Path


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


def test_ctrl_c_ends_it_with_a_summary_and_nothing_left(tmp_path):
    process = demo(tmp_path, "--duration", "120s", "--nodes", "2")
    time.sleep(10)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    summary = json.loads(out)
    assert summary["seconds"] < 60
    assert summary["nodes"] == 3
    assert leftovers(tmp_path / "d") == []
