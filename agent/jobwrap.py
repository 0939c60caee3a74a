"""`python -m agent.jobwrap DIR`: runs one job for the agent and records how it ended.

It starts the job without a shell (argv as given) in its own process group, copies its
output into `stdout`/`stderr` up to the cap (the rest is counted, not kept), and writes
`result.json` when it exits: negative exit codes are the signal that ended it. SIGTERM and
SIGINT aimed at the wrapper are ignored so that it outlives its agent; the agent signals
the job's process group, never the wrapper.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from agent.jobdir import Result, Spec, read_spec, write_result
from shared.jobfiles import PID

CHUNK = 65536


def copy_capped(source: IO[bytes], target: Path, cap: int, truncated: list[int]) -> None:
    """Copy up to `cap` bytes, then count and drop the rest (the job never blocks on us)."""
    written = 0
    with target.open("wb") as out:
        while chunk := source.read1(CHUNK):  # type: ignore[attr-defined]
            keep = chunk[: max(cap - written, 0)]
            if keep:
                out.write(keep)
                out.flush()
                written += len(keep)
            truncated[0] += len(chunk) - len(keep)


def environment(spec: Spec, directory: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, spec.gpus))
    env["DORMOUSE_JOB_ID"] = spec.job_id
    env["DORMOUSE_JOB_DIR"] = str(directory)
    if spec.user:
        record = pwd.getpwnam(spec.user)
        env |= {"HOME": record.pw_dir, "USER": spec.user, "LOGNAME": spec.user}
    return env


def run(directory: Path) -> int:
    spec = read_spec(directory)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: None)  # handlers, unlike SIG_IGN, reset on exec
    try:
        child = subprocess.Popen(  # noqa: S603 - the signed job's argv, no shell, on purpose
            spec.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=directory,
            env=environment(spec, directory),
            process_group=0,
            user=spec.user or None,
        )
    except (OSError, KeyError) as exc:  # no such program, not executable, unknown user
        (directory / "stderr").write_text(f"dormouse: cannot start {spec.argv[0]!r}: {exc}\n")
        write_result(directory, Result(exit_code=127, ended_at=time.time()))
        return 0
    (directory / PID).write_text(str(child.pid))
    truncated = [0]
    copiers = [
        threading.Thread(
            target=copy_capped, args=(pipe, directory / name, spec.log_max_bytes, truncated)
        )
        for pipe, name in ((child.stdout, "stdout"), (child.stderr, "stderr"))
    ]
    for copier in copiers:
        copier.start()
    code = child.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)  # what it left behind in its group goes with it
    for copier in copiers:
        copier.join(timeout=5)
    write_result(
        directory,
        Result(exit_code=max(code, -255), ended_at=time.time(), truncated_bytes=truncated[0]),
    )
    return 0


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1])))
