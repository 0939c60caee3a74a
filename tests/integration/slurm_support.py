"""A real Slurm on loopback for the tests: Debian's `slurmctld` and one `slurmd -N NAME` per
node on its own port, in a scratch directory, with munge (started by `.ci/run`). Processes
are stopped by the pids they wrote, never by name.

The hosts' power is played by `Hosts`: a host that sleeps stops its `slurmd`; one that wakes
starts it again, with `-b` (report a reboot) as slurmd must on a suspend-to-RAM host for
Slurm to take its registration after a resume (docs/slurm.md), or late, as a slow host.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from coordinator.slurm.nodes import SlurmNode, parse_show_node
from tests.conftest import missing_service

BINARIES = ("slurmctld", "slurmd", "scontrol", "sbatch", "munge")
PROGRAMS = {
    "SuspendProgram": "dormouse-slurm-suspend",
    "ResumeProgram": "dormouse-slurm-resume",
    "ResumeFailProgram": "dormouse-slurm-resume-fail",
}


def require_slurm() -> None:
    missing = [
        b for b in BINARIES if shutil.which(b) is None and not Path(f"/usr/sbin/{b}").exists()
    ]
    if missing:
        missing_service(f"Slurm is not installed ({', '.join(missing)}; see .ci/run)")
    munge = subprocess.run(
        "munge -n | unmunge", shell=True, capture_output=True, text=True, check=False
    )
    if munge.returncode != 0:
        missing_service(f"munged is not running (.ci/run starts it): {munge.stderr.strip()}")


def free_ports(count: int) -> int:
    """The first of `count` consecutive free TCP ports on loopback."""
    for base in range(21000 + os.getpid() % 4000, 60000, 7):
        if all(_free(port) for port in range(base, base + count)):
            return base
    raise RuntimeError("no free ports")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def program_wrappers(directory: Path, env: dict[str, str]) -> dict[str, Path]:
    """Slurm runs its programs with only SLURM_CONF in the environment: each wrapper sets the
    coordinator's settings (as /etc/dormouse/coordinator.toml would) and runs the installed
    entry point."""
    bin_dir = Path(sys.executable).parent
    exports = "".join(f"export {k}='{v}'\n" for k, v in env.items() if k.startswith("DORMOUSE_"))
    wrappers = {}
    for key, program in PROGRAMS.items():
        path = directory / program
        path.write_text(f'#!/bin/sh\n{exports}exec {bin_dir / program} "$@"\n')
        path.chmod(0o755)
        wrappers[key] = path
    return wrappers


@dataclass
class SlurmCluster:
    root: Path
    nodes: list[str]
    programs: dict[str, Path]
    suspend_time: str = "3"
    resume_timeout: int = 15
    slurmd_timeout: int = 30
    return_to_service: int = 1
    port: int = field(default_factory=lambda: free_ports(8))

    def __post_init__(self) -> None:
        for sub in ("state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for node in self.nodes:
            (self.root / "spool" / node).mkdir(exist_ok=True)
        (self.root / "slurm.conf").write_text(self.conf())

    def conf(self) -> str:
        root, first = self.root, self.port + 1
        programs = "".join(f"{key}={path}\n" for key, path in self.programs.items())
        return f"""ClusterName=dmtest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={self.port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd-%n.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd-%n.log
SlurmctldDebug=debug
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
MailProg=/bin/true
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService={self.return_to_service}
SlurmdTimeout={self.slurmd_timeout}
{programs}SuspendTime={self.suspend_time}
SuspendTimeout=3
ResumeTimeout={self.resume_timeout}
NodeName={",".join(self.nodes)} NodeHostname=localhost NodeAddr=127.0.0.1 \
Port={first}-{first + len(self.nodes) - 1} CPUs=2 RealMemory=1000
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""

    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.root / "slurm.conf")}

    def run(self, *argv: str) -> str:
        done = subprocess.run(
            argv, env=self.env(), capture_output=True, text=True, timeout=30, check=False
        )
        assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr}"
        return done.stdout

    def start(self) -> None:
        self.run("slurmctld", "-i")
        deadline = time.monotonic() + 20
        while subprocess.run(
            ["scontrol", "ping"], env=self.env(), capture_output=True, check=False
        ).returncode:
            assert time.monotonic() < deadline, self.log()
            time.sleep(0.3)
        for node in self.nodes:
            self.start_slurmd(node)

    def start_slurmd(self, node: str, *, rebooted: bool = False) -> None:
        self.run("slurmd", "-N", node, *(["-b"] if rebooted else []))

    def slurmd_running(self, node: str) -> bool:
        return self._pid(f"slurmd-{node}.pid") is not None

    def stop_slurmd(self, node: str) -> None:
        self._stop(f"slurmd-{node}.pid")

    def stop(self) -> None:
        for node in self.nodes:
            self.stop_slurmd(node)
        self._stop("slurmctld.pid")

    def _pid(self, name: str) -> int | None:
        try:
            pid = int((self.root / name).read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def _stop(self, name: str) -> None:
        pid = self._pid(name)
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while self._pid(name) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        (self.root / name).unlink(missing_ok=True)

    def show(self) -> dict[str, SlurmNode]:
        """Slurm's nodes, read with the same parser the coordinator uses."""
        return {
            n.name: n for n in parse_show_node(self.run("scontrol", "--oneliner", "show", "node"))
        }

    def sbatch(self, node: str, command: str) -> str:
        out = self.root / "job-%j.out"
        said = self.run("sbatch", "--parsable", "-w", node, "-o", str(out), "--wrap", command)
        return said.strip().split(";")[0]

    def job_state(self, job_id: str) -> str:
        said = subprocess.run(
            ["scontrol", "--oneliner", "show", "job", job_id],
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        fields = dict(p.split("=", 1) for p in said.split() if "=" in p)
        return fields.get("JobState", "GONE")

    def log(self) -> str:
        path = self.root / "log" / "slurmctld.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


@dataclass
class Hosts:
    """The hosts' power, played from dormouse's view of each node: asleep stops its slurmd,
    online starts it (`-b`, as after a resume; `late` nodes only `late_s` after coming
    back, as a host slower than ResumeTimeout)."""

    cluster: SlurmCluster
    db_url: str
    names: dict[str, str]  # Slurm's name -> dormouse's
    late: set[str] = field(default_factory=set)
    late_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    _back_at: dict[str, float] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event) -> None:
        engine = sa.create_engine(self.db_url)
        try:
            while not stop.is_set():
                await asyncio.to_thread(self._step, engine)
                await asyncio.sleep(0.3)
        finally:
            engine.dispose()

    def _step(self, engine: sa.Engine) -> None:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT name, state FROM nodes")).all()
        states: dict[str, str] = dict(rows)
        now = time.monotonic()
        for slurm, node in self.names.items():
            running = self.cluster.slurmd_running(slurm)
            state = states.get(node)
            if state == "asleep" and running:
                self.cluster.stop_slurmd(slurm)
                self._back_at.pop(slurm, None)
            elif state == "online" and not running:
                at = self._back_at.setdefault(
                    slurm, now + (self.late_s if slurm in self.late else 0.0)
                )
                if now >= at:
                    try:
                        self.cluster.start_slurmd(slurm, rebooted=True)
                    except AssertionError as exc:
                        self.errors.append(str(exc))
