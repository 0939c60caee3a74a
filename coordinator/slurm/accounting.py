"""Slurm's accounting, the I/O edge: `sacct --parsable2` over a window, in UTC, with the
columns `coordinator.slurm.sacct` reads (docs/slurm.md, "History as a trace")."""

from __future__ import annotations

import os
import shlex
import subprocess

from shared.errors import ConfigError

FORMAT = "JobID,Submit,Start,End,Elapsed,NNodes,NCPUS,AllocTRES,State"
TIMEOUT_S = 600.0


def history(command: str, since_s: float) -> str:
    """The site's jobs of the last `since_s` seconds. Raises ConfigError with sacct's last
    line when it cannot be run or fails (no slurmdbd, say)."""
    argv = [
        *shlex.split(command),
        "--allusers",
        "--parsable2",
        "--starttime",
        f"now-{int(since_s)}",
        "--format",
        FORMAT,
    ]
    try:
        done = subprocess.run(  # noqa: S603 - the configured sacct, no shell
            argv,
            env=os.environ | {"TZ": "UTC"},
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(
            f"cannot run {argv[0]}: {exc}; give the history with --sacct FILE"
        ) from None
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:] or ["no message"]
        raise ConfigError(f"{shlex.join(argv)} exited {done.returncode}: {last[0]}")
    return done.stdout
