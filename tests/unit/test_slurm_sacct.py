"""sacct --parsable2 as a trace: which rows are jobs (not steps, not a pending array's
placeholder, not a job that never started), their GPUs, CPUs and memory from the TRES, a
running job's Elapsed, multi-node jobs split per node, trace time from a Monday, and
`dormouse simulate --trace` reading it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from coordinator.sim.trace import TraceOptions, parse_trace
from coordinator.slurm.sacct import is_sacct, parse_sacct
from shared.errors import ConfigError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "slurm"
# written by hand for what a short real run does not show: a pending array's placeholder, a
# job that never started, typed GPUs, memory in the TRES, a job of days
FIXTURE = FIXTURES / "sacct-cases.txt"
# captured from Slurm 22.05 (Debian's slurmctld, two slurmd -N, slurmdbd on MariaDB) on a
# machine like CI's: `TZ=UTC sacct --allusers --parsable2 --format ...` after a GPU job, a
# two-node job with a step, a job array of six throttled to one at a time, a failing job and
# a long one, while the last array task and the long job ran
REAL = FIXTURES / "sacct-22.05.txt"
MONDAY = datetime(2026, 11, 2, tzinfo=UTC).timestamp()  # the fixture's first submit's Monday
GIB = 2**30


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() - MONDAY


def test_the_fixture_reads_as_the_jobs_slurm_ran():
    jobs = parse_sacct(FIXTURE.read_text().splitlines(), "sacct.txt")
    got = [(j.id, j.submit_s, j.runtime_s, j.gpus, j.cpus, j.mem_bytes) for j in jobs]
    assert got == [
        ("4101", at("2026-11-02T09:00:00"), 3600.0, 2, 8, 64 * GIB),
        ("4102_0", at("2026-11-02T09:30:00"), 600.0, 1, 4, 16000 * 2**20),
        ("4102_1", at("2026-11-02T09:30:00"), 900.0, 1, 4, 16000 * 2**20),
        # running: its Elapsed so far; on two nodes: one job per node with half of it
        ("4103+0", at("2026-11-02T11:00:00"), 93784.0, 4, 16, 128 * GIB),
        ("4103+1", at("2026-11-02T11:00:00"), 93784.0, 4, 16, 128 * GIB),
        ("4105", at("2026-11-03T08:00:00"), 1200.0, 0, 1, 1000 * 2**20),
    ]


def test_real_sacct_output_reads_as_the_jobs_that_ran():
    jobs = {j.id: j for j in parse_sacct(REAL.read_text().splitlines(), "sacct-22.05.txt")}
    assert sorted(jobs) == ["1", "2+0", "2+1", "3_0", "3_1", "3_2", "3_3", "3_4", "3_5", "6"]
    assert (jobs["1"].runtime_s, jobs["1"].gpus, jobs["1"].cpus) == (3.0, 2, 2)
    assert (jobs["2+0"].gpus, jobs["2+1"].cpus) == (1, 1)  # two nodes: half each
    assert (jobs["6"].runtime_s, jobs["3_5"].runtime_s) == (15.0, 1.0)  # running: Elapsed
    assert {j.gpus for i, j in jobs.items() if i.startswith("3_")} == {1}
    # job 4 failed at once (Elapsed 0): nothing to replay; steps (1.batch, 2.0) are not jobs
    submit = datetime(2026, 12, 7, 0, 18, 17, tzinfo=UTC).timestamp()
    monday = datetime(2026, 12, 7, tzinfo=UTC).timestamp()
    assert jobs["1"].submit_s == submit - monday


def test_simulate_reads_sacct_with_the_deadline_factor():
    with FIXTURE.open() as lines:
        jobs = parse_trace(lines, TraceOptions(deadline_factor=2.0), "sacct.txt")
    first = jobs[0]
    assert (first.id, first.deadline_s) == ("4101", first.submit_s + 7200.0)
    assert len(jobs) == 6


def test_epoch_times_and_a_bad_row_name_the_line():
    text = "JobID|Submit|Start|End|NNodes|NCPUS|AllocTRES\n7|100|160|220|1|2|cpu=2\n"
    (job,) = parse_sacct(text.splitlines())
    # trace time 0: Monday 1969-12-29 00:00 UTC, 3 days before the epoch (a Thursday)
    assert (job.runtime_s, job.cpus, job.submit_s) == (60.0, 2, 3 * 86400 + 100)
    with pytest.raises(ConfigError, match=r"sacct\.txt:3"):
        parse_sacct([*text.splitlines(), "8|100|yesterday|220|1|2|cpu=2"], "sacct.txt")
    with pytest.raises(ConfigError, match="not sacct --parsable2 output"):
        parse_sacct(["JobID|State", "1|COMPLETED"])
    assert is_sacct("JobID|Submit|Start")
    assert not is_sacct("submit_s,runtime_s,gpus")
