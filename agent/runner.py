"""The job runner: starts jobs through `agent.jobwrap`, watches them, stops them, and turns
what happened into events for the coordinator.

State lives in each job's directory (`agent.jobdir`), so after an agent restart `recover`
finds jobs that are still running (and reports them) and jobs that ended meanwhile (and
reports how). Events wait in `outbox` until the broker acknowledges them; a finished job's
directory is marked `reported` only then, so its result is sent at least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import shutil
import signal
import sys
from collections import deque
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from agent import jobdir
from agent.jobdir import Result, Spec
from shared import jobfiles
from shared.clock import Clock
from shared.errors import ConfigError
from shared.jobenergy import JobShare, charge, gpu_util
from shared.messages import Event, FetchOutput, RunJob, Sample

log = logging.getLogger(__name__)
WATCH_INTERVAL_S = 0.2
CLEANUP_INTERVAL_S = 3600.0


@dataclass
class Tracked:
    spec: Spec
    directory: Path
    wrapper: asyncio.subprocess.Process | None  # None: recovered after an agent restart
    wrapper_pid: int
    energy_j: float | None = None
    util_sum: float = 0.0  # its GPUs' utilisation (%), summed over the samples of its run
    util_n: int = 0
    metered: bool = False  # sampled while running: charged from the next interval on
    stop_reason: str = ""
    kill_at: float | None = None


class Runner:
    def __init__(
        self,
        jobs_dir: Path,
        node: str,
        clock: Clock,
        *,
        log_max_bytes: int,
        kill_grace_s: float,
        keep_s: float = 7 * 86400.0,
        user: str = "",
        node_cpus: int | None = None,
    ) -> None:
        self.jobs_dir, self.node, self.clock = jobs_dir, node, clock
        self._log_max_bytes, self._kill_grace_s, self._user = log_max_bytes, kill_grace_s, user
        self._keep_s = keep_s
        self._next_cleanup = 0.0
        self._jobs: dict[str, Tracked] = {}
        self._node_cpus = node_cpus or os.cpu_count() or 1
        self._last_sample: Sample | None = None
        self.outbox: deque[Event] = deque()
        self.queued = asyncio.Event()
        self._tracking = asyncio.Event()  # set when a job is tracked: `watch` has work
        check_user(user)
        jobs_dir.mkdir(parents=True, exist_ok=True)

    def count(self) -> int:
        return len(self._jobs)

    def _track(self, tracked: Tracked) -> None:
        self._jobs[tracked.spec.job_id] = tracked
        self._tracking.set()

    def _emit(self, kind: str, job_id: str, **fields: object) -> None:
        self.outbox.append(
            Event(node=self.node, ts=self.clock.now(), kind=kind, job_id=job_id, **fields)  # type: ignore[arg-type]
        )
        self.queued.set()

    def recover(self) -> None:
        """After a restart: adopt jobs still running, report those that ended meanwhile."""
        for directory in jobdir.unfinished(self.jobs_dir):
            spec = jobdir.read_spec(directory)
            pid = _int(jobdir.read_text(directory / jobfiles.WRAPPER_PID))
            tracked = Tracked(spec, directory, None, pid or 0)
            if jobdir.read_result(directory) is None and not _wrapper_alive(pid):
                self._emit(
                    "job_lost", spec.job_id, detail="its wrapper died while the agent was down"
                )
                continue
            self._track(tracked)
            log.info("recovered job %s (%s)", spec.job_id, " ".join(spec.argv)[:80])
        self.resync()

    def resync(self) -> None:
        """Say which jobs are running (after a reconnect, so the coordinator can reconcile)."""
        now = self.clock.now()
        for job_id, tracked in self._jobs.items():
            self._emit("job_running", job_id, runtime_s=max(now - tracked.spec.started_at, 0.0))

    async def start(self, run: RunJob) -> None:
        directory = self.jobs_dir / run.job_id
        if directory.exists():
            self._repeat(run.job_id, directory)  # the coordinator sent it again
            return
        directory.mkdir(mode=0o750)
        if self._user:
            record = pwd.getpwnam(self._user)
            os.chown(directory, record.pw_uid, record.pw_gid)
        spec = Spec(
            job_id=run.job_id,
            argv=list(run.argv),
            gpus=list(run.gpus),
            started_at=self.clock.now(),
            runtime_limit_s=run.runtime_limit_s,
            log_max_bytes=self._log_max_bytes,
            user=self._user,
            cpus=run.cpus,
        )
        jobdir.write_spec(directory, spec)
        with (directory / "wrapper.log").open("wb") as wrapper_log:
            wrapper = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "agent.jobwrap",
                str(directory),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=wrapper_log,
                stderr=wrapper_log,
                start_new_session=True,  # its own session: it outlives the agent
            )
        (directory / jobfiles.WRAPPER_PID).write_text(str(wrapper.pid))
        self._track(Tracked(spec, directory, wrapper, wrapper.pid))
        self._emit("job_started", run.job_id, detail=f"GPUs {spec.gpus or 'none'}")
        log.info("started job %s: %s", run.job_id, " ".join(run.argv)[:200])

    def _repeat(self, job_id: str, directory: Path) -> None:
        if job_id in self._jobs:
            started = self._jobs[job_id].spec.started_at
            self._emit("job_running", job_id, runtime_s=max(self.clock.now() - started, 0.0))
            return
        if not (directory / jobfiles.SPEC).is_file():  # the agent died while creating it
            self._emit("job_lost", job_id, detail="its directory on the node is incomplete")
            return
        (directory / jobfiles.REPORTED).unlink(missing_ok=True)  # report its end once more
        spec = jobdir.read_spec(directory)
        self._track(Tracked(spec, directory, None, 0))

    def output(self, fetch: FetchOutput) -> Event:
        """A piece of a job's stdout or stderr from its directory, as the `job_output`
        event answering the fetch; a job this node does not have (never here, or its
        directory expired) answers with the reason in `detail`."""
        path = self.jobs_dir / fetch.job_id / fetch.stream
        answer = partial(
            Event, node=self.node, ts=self.clock.now(), kind="job_output", job_id=fetch.job_id,
            request=fetch.request,
        )  # fmt: skip
        try:
            piece = jobdir.read_piece(path, fetch.offset, fetch.limit)
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            return answer(detail=f"no {fetch.stream} for job {fetch.job_id} on {self.node}: {why}")
        return answer(
            output=piece.text,
            output_offset=piece.start,
            output_next=piece.next,
            output_size=piece.size,
        )

    def cancel(self, job_id: str, grace_s: float) -> None:
        tracked = self._jobs.get(job_id)
        if tracked is None:
            directory = self.jobs_dir / job_id
            if directory.is_dir():
                self._repeat(job_id, directory)
            else:
                self._emit("job_lost", job_id, detail="cancelled: the job never reached this node")
            return
        self._stop(tracked, "cancelled", grace_s)

    def _stop(self, tracked: Tracked, reason: str, grace_s: float) -> None:
        if tracked.stop_reason:
            return
        tracked.stop_reason = reason
        (tracked.directory / jobfiles.STOP).write_text(reason)
        tracked.kill_at = self.clock.now() + grace_s
        self._signal(tracked, signal.SIGTERM)
        log.info("job %s: SIGTERM (%s)", tracked.spec.job_id, reason)

    def _signal(self, tracked: Tracked, signum: int) -> None:
        pid = jobdir.read_pid(tracked.directory)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signum)

    def on_sample(self, sample: Sample) -> None:
        """Charge each job that ran through the last interval its own GPUs' energy and its
        CPU share of the host's (`shared.jobenergy`): never the whole node's."""
        previous, self._last_sample = self._last_sample, sample
        metered = {job_id: t for job_id, t in self._jobs.items() if t.metered}
        if previous is not None and metered:
            shares = {
                job_id: JobShare(tuple(t.spec.gpus), t.spec.cpus) for job_id, t in metered.items()
            }
            for job_id, joules in charge(previous, sample, shares, self._node_cpus).items():
                metered[job_id].energy_j = (metered[job_id].energy_j or 0.0) + joules
        for tracked in self._jobs.values():
            tracked.metered = True
            util = gpu_util(sample, tuple(tracked.spec.gpus))
            if util is not None:
                tracked.util_sum, tracked.util_n = tracked.util_sum + util, tracked.util_n + 1

    async def watch(self) -> None:
        """Check the jobs every WATCH_INTERVAL_S while any run; with none, sleep until one is
        tracked or the clean-up is due: an idle agent does not wake five times a second."""
        while True:
            self.check()
            if self.clock.now() >= self._next_cleanup:
                await asyncio.to_thread(self.clean_up)
                self._next_cleanup = self.clock.now() + CLEANUP_INTERVAL_S
            if self._jobs:
                await asyncio.sleep(WATCH_INTERVAL_S)
                continue
            self._tracking.clear()
            idle_s = max(self._next_cleanup - self.clock.now(), WATCH_INTERVAL_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._tracking.wait(), idle_s)

    def clean_up(self) -> int:
        """Delete directories of jobs reported over more than `keep_s` ago."""
        old = jobdir.expired(self.jobs_dir, self.clock.now() - self._keep_s)
        for directory in old:
            shutil.rmtree(directory, ignore_errors=True)
        if old:
            log.info("deleted %d job directories older than %gs", len(old), self._keep_s)
        return len(old)

    def check(self) -> None:
        now = self.clock.now()
        for tracked in list(self._jobs.values()):
            result = jobdir.read_result(tracked.directory)
            if result is not None:
                self._finished(tracked, result)
            elif not self._alive(tracked):
                if (result := jobdir.read_result(tracked.directory)) is not None:
                    self._finished(tracked, result)  # it ended between the two reads
                else:
                    self._lost(tracked, "its wrapper died without a result")
            elif tracked.kill_at is not None and now >= tracked.kill_at:
                self._signal(tracked, signal.SIGKILL)
                tracked.kill_at = None
                log.warning("job %s: SIGKILL after the grace period", tracked.spec.job_id)
            else:
                self._enforce_limit(tracked, now)

    def _enforce_limit(self, tracked: Tracked, now: float) -> None:
        limit = tracked.spec.runtime_limit_s
        if limit is not None and now - tracked.spec.started_at > limit:
            self._stop(tracked, f"killed: past its runtime limit of {limit:g}s", self._kill_grace_s)

    def _alive(self, tracked: Tracked) -> bool:
        if tracked.wrapper is not None:
            return tracked.wrapper.returncode is None
        return _wrapper_alive(tracked.wrapper_pid)

    def _finished(self, tracked: Tracked, result: Result) -> None:
        del self._jobs[tracked.spec.job_id]
        reason = tracked.stop_reason or jobdir.read_text(tracked.directory / jobfiles.STOP)
        notes = [reason] if reason else []
        if result.truncated_bytes:
            notes.append(f"{result.truncated_bytes} bytes of output over the cap were dropped")
        self._emit(
            "job_finished",
            tracked.spec.job_id,
            exit_code=result.exit_code,
            runtime_s=max(result.ended_at - tracked.spec.started_at, 0.0),
            energy_j=tracked.energy_j,
            gpu_util_pct=tracked.util_sum / tracked.util_n if tracked.util_n else None,
            detail="; ".join(notes),
            **jobdir.tails(tracked.directory),
        )
        log.info("job %s ended: exit %d", tracked.spec.job_id, result.exit_code)

    def _lost(self, tracked: Tracked, reason: str) -> None:
        del self._jobs[tracked.spec.job_id]
        self._emit(
            "job_lost", tracked.spec.job_id, detail=reason, **jobdir.tails(tracked.directory)
        )
        log.warning("job %s lost: %s", tracked.spec.job_id, reason)

    def delivered(self, event: Event) -> None:
        """The broker has the event: a job that ended need not be reported again."""
        if event.kind in {"job_finished", "job_lost"} and event.job_id is not None:
            marker = self.jobs_dir / event.job_id / jobfiles.REPORTED
            if marker.parent.is_dir():
                marker.touch()


def check_user(user: str) -> None:
    """Running jobs as another user needs root; say so at start, not at the first job."""
    if not user:
        return
    try:
        record = pwd.getpwnam(user)
    except KeyError:
        raise ConfigError(f"job_user: no such user {user!r}") from None
    if os.geteuid() not in {0, record.pw_uid}:
        raise ConfigError(f"job_user: running jobs as {user!r} needs the agent to run as root")


def _int(text: str) -> int | None:
    return int(text) if text.strip().isdigit() else None


def _wrapper_alive(pid: int | None) -> bool:
    """Alive and still our wrapper (a recycled pid is some other program)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"agent.jobwrap" in cmdline and not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True
