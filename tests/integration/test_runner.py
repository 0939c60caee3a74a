"""The agent's job runner with real processes (no broker needed)."""

from __future__ import annotations

import asyncio
import itertools
import os
import pwd
import sys
from dataclasses import replace

import pytest

from agent.runner import Runner
from shared.clock import SystemClock
from shared.errors import ConfigError
from shared.jobenergy import node_energy
from shared.messages import GpuSample, RunJob, Sample

PY = sys.executable


def make_runner(tmp_path, **kw) -> Runner:
    options = {"log_max_bytes": 1 << 20, "kill_grace_s": 1.0} | kw
    return Runner(tmp_path / "jobs", "n1", SystemClock(), **options)


async def next_event(runner: Runner, kind: str, timeout_s: float = 15.0):
    """Drive the runner's checks until an event of `kind` is queued; return it (and drop
    the events before it)."""
    async with asyncio.timeout(timeout_s):
        while True:
            while runner.outbox:
                event = runner.outbox.popleft()
                if event.kind == kind:
                    return event
            runner.check()
            await asyncio.sleep(0.05)


def run_job(job_id: str, *argv: str, gpus=(), limit=None) -> RunJob:
    return RunJob(job_id=job_id, argv=argv, gpus=tuple(gpus), runtime_limit_s=limit)


async def test_runs_argv_without_a_shell_with_its_gpus_and_id(tmp_path):
    runner = make_runner(tmp_path)
    script = (
        "import os, sys; env = os.environ;"
        "print(env['CUDA_VISIBLE_DEVICES'], env['DORMOUSE_JOB_ID'], sys.argv[1:])"
    )
    await runner.start(run_job("j1", PY, "-c", script, "$HOME", "a b;c", gpus=[2, 3]))
    started = await next_event(runner, "job_started")
    assert (started.job_id, started.node) == ("j1", "n1")
    assert runner.count() == 1
    finished = await next_event(runner, "job_finished")
    assert (finished.exit_code, finished.detail) == (0, "")
    assert finished.runtime_s >= 0
    out = (tmp_path / "jobs" / "j1" / "stdout").read_text()
    assert out == "2,3 j1 ['$HOME', 'a b;c']\n"  # no shell expanded or split anything
    assert runner.count() == 0


async def test_exit_code_and_an_unknown_program(tmp_path):
    runner = make_runner(tmp_path)
    await runner.start(run_job("fails", PY, "-c", "import sys; sys.exit(3)"))
    assert (await next_event(runner, "job_finished")).exit_code == 3
    await runner.start(run_job("nope", "/no/such/program"))
    finished = await next_event(runner, "job_finished")
    assert finished.exit_code == 127
    assert "cannot start" in (tmp_path / "jobs" / "nope" / "stderr").read_text()


async def test_output_is_capped_and_the_rest_counted(tmp_path):
    runner = make_runner(tmp_path, log_max_bytes=1000)
    script = "import sys; sys.stdout.write('x' * 100_000); sys.stderr.write('e' * 10)"
    await runner.start(run_job("loud", PY, "-c", script))
    finished = await next_event(runner, "job_finished")
    assert finished.exit_code == 0
    assert (tmp_path / "jobs" / "loud" / "stdout").read_text() == "x" * 1000
    assert (tmp_path / "jobs" / "loud" / "stderr").read_text() == "e" * 10
    assert "99000 bytes of output over the cap were dropped" in finished.detail


async def test_cancel_sends_sigterm_then_sigkill_after_the_grace(tmp_path):
    runner = make_runner(tmp_path)
    await runner.start(run_job("polite", PY, "-c", "import time; time.sleep(60)"))
    await next_event(runner, "job_started")
    await asyncio.sleep(0.5)
    runner.cancel("polite", grace_s=5.0)
    finished = await next_event(runner, "job_finished")
    assert (finished.exit_code, finished.detail) == (-15, "cancelled")

    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        "print('ready', flush=True); time.sleep(60)"
    )
    await runner.start(run_job("stubborn", PY, "-c", stubborn))
    stdout = tmp_path / "jobs" / "stubborn" / "stdout"
    async with asyncio.timeout(10):
        while "ready" not in (stdout.read_text() if stdout.exists() else ""):
            await asyncio.sleep(0.05)
    runner.cancel("stubborn", grace_s=0.5)
    finished = await next_event(runner, "job_finished")
    assert finished.exit_code == -9


async def test_a_job_past_its_runtime_limit_is_killed_and_marked(tmp_path):
    runner = make_runner(tmp_path)
    await runner.start(run_job("slow", PY, "-c", "import time; time.sleep(60)", limit=0.5))
    finished = await next_event(runner, "job_finished")
    assert finished.exit_code == -15
    assert finished.detail == "killed: past its runtime limit of 0.5s"


async def test_a_repeated_run_is_not_started_twice_and_unknown_cancel_is_lost(tmp_path):
    runner = make_runner(tmp_path)
    await runner.start(run_job("once", PY, "-c", "import time; time.sleep(1)"))
    await runner.start(run_job("once", PY, "-c", "import time; time.sleep(1)"))
    kinds = [e.kind for e in runner.outbox]
    assert kinds == ["job_started", "job_running"]
    await next_event(runner, "job_finished")
    runner.cancel("ghost", 1.0)
    lost = runner.outbox.pop()
    assert (lost.kind, lost.job_id) == ("job_lost", "ghost")


async def test_after_an_agent_restart_jobs_are_recovered_and_reported(tmp_path):
    first = make_runner(tmp_path)
    await first.start(run_job("long", PY, "-c", "import time; time.sleep(1.5)"))
    await first.start(run_job("quick", PY, "-c", "print('hi')"))
    await next_event(first, "job_started")
    del first  # the agent dies; its jobs' wrappers live on in their own sessions
    await asyncio.sleep(0.5)

    second = make_runner(tmp_path)
    second.recover()
    kinds = {(e.kind, e.job_id) for e in second.outbox}
    assert ("job_running", "long") in kinds
    assert second.count() == 2
    ended = {}
    async with asyncio.timeout(15):
        while len(ended) < 2:
            second.check()
            while second.outbox:
                event = second.outbox.popleft()
                if event.kind == "job_finished":
                    ended[event.job_id] = event
                    second.delivered(event)
            await asyncio.sleep(0.05)
    assert {k: e.exit_code for k, e in ended.items()} == {"long": 0, "quick": 0}

    third = make_runner(tmp_path)
    third.recover()
    assert list(third.outbox) == []  # reported already: not again
    await third.start(run_job("quick", PY, "-c", "print('hi')"))  # the coordinator asks again
    assert (await next_event(third, "job_finished")).exit_code == 0


async def test_two_jobs_sharing_a_node_are_each_charged_their_own_gpus_and_cpu_share(tmp_path):
    runner = make_runner(tmp_path, node_cpus=8)
    sleep = (PY, "-c", "import time; time.sleep(0.5)")
    await runner.start(replace(run_job("a", *sleep), gpus=(0,), cpus=2))
    await runner.start(replace(run_job("b", *sleep), gpus=(1,), cpus=4))

    def sample(ts: float, gpu_j: tuple[float, float], rapl_j: float, util=(50, 10)) -> Sample:
        gpus = tuple(
            GpuSample(index=i, uuid=f"GPU-{i}", metrics={"gpu_energy_j": j, "gpu_util_pct": u})
            for i, (j, u) in enumerate(zip(gpu_j, util, strict=True))
        )
        return Sample(ts=ts, metrics={"rapl_package_energy_j": rapl_j}, gpus=gpus)

    samples = [
        sample(100.0, (0.0, 0.0), 0.0),
        sample(101.0, (300.0, 100.0), 80.0, (90, 0)),
        sample(103.0, (900.0, 100.0), 240.0, (100, 2)),  # b's GPU idles: b pays none of a's
    ]
    for each in samples:
        runner.on_sample(each)
    ended, util = {}, {}
    for _ in range(2):
        event = await next_event(runner, "job_finished")
        ended[event.job_id] = event.energy_j
        util[event.job_id] = event.gpu_util_pct
    assert util == {"a": pytest.approx(80.0), "b": pytest.approx(4.0)}  # its own GPU's mean
    assert ended["a"] == pytest.approx(900.0 + 240.0 * 2 / 8)
    assert ended["b"] == pytest.approx(100.0 + 240.0 * 4 / 8)
    node = sum(node_energy(x, y) for x, y in itertools.pairwise(samples))
    assert sum(ended.values()) <= node == 900.0 + 100.0 + 240.0


def test_a_job_user_that_does_not_exist_is_refused_at_start(tmp_path):
    with pytest.raises(ConfigError, match="no such user"):
        make_runner(tmp_path, user="no-such-user-dormouse")


async def test_reported_job_directories_are_deleted_after_keep(tmp_path):
    runner = make_runner(tmp_path, keep_s=3600.0)
    await runner.start(run_job("old", PY, "-c", "pass"))
    await runner.start(run_job("new", PY, "-c", "pass"))
    for _ in range(2):
        runner.delivered(await next_event(runner, "job_finished"))
    jobs = tmp_path / "jobs"
    two_hours_ago = runner.clock.now() - 7200
    os.utime(jobs / "old" / "reported", (two_hours_ago, two_hours_ago))
    assert runner.clean_up() == 1
    assert sorted(p.name for p in jobs.iterdir()) == ["new"]


@pytest.mark.skipif(os.geteuid() != 0, reason="running jobs as another user needs root")
async def test_a_job_runs_as_job_user(tmp_path):
    tmp_path.chmod(0o755)  # the job's user must reach its directory
    runner = make_runner(tmp_path, user="nobody")
    (tmp_path / "jobs").chmod(0o755)
    await runner.start(run_job("who", "/usr/bin/id", "-u"))  # the venv may be out of its reach
    finished = await next_event(runner, "job_finished")
    assert finished.exit_code == 0, (tmp_path / "jobs" / "who" / "stderr").read_text()
    nobody = pwd.getpwnam("nobody")
    assert (tmp_path / "jobs" / "who" / "stdout").read_text() == f"{nobody.pw_uid}\n"
    assert (tmp_path / "jobs" / "who").stat().st_uid == nobody.pw_uid
