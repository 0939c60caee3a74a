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

FIXTURE = Path(__file__).parents[1] / "fixtures" / "slurm" / "sacct-parsable2.txt"
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
