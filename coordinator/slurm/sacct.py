"""A site's Slurm accounting as a job trace, pure: `sacct --parsable2` text in, jobs out
(`coordinator.sim.trace` reads them as a trace, for `dormouse simulate --trace`).

The fields read (`FIELDS`, what `dormouse slurm advise` asks sacct for): JobID, Submit,
Start, End, Elapsed, NNodes, NCPUS, AllocTRES (else ReqTRES), State. Rules:
* steps (`1234.batch`, `1234.0`, `1234.extern`, `1234_7.0`) are parts of a job already
  counted: skipped;
* array tasks (`1234_7`) are jobs of their own; a pending array's placeholder
  (`1234_[8-20]`) and any job that never started (Start `Unknown` or `None`) is skipped;
* a job still running (End `Unknown`) counts with its Elapsed so far;
* GPUs from `gres/gpu=N` (typed `gres/gpu:a100=N` too), CPUs from NCPUS (else `cpu=N`),
  memory from `mem=` in the TRES;
* a job on several nodes becomes one job per node, each with its share (the simulator
  places a job on one node);
* times are ISO-8601 as sacct prints them (read as UTC unless they carry an offset; set
  `TZ=UTC` or `SLURM_TIME_FORMAT=%s` when running sacct) or epoch seconds; trace time 0 is
  the Monday 00:00 UTC on or before the first submit, so time-of-day tariffs line up.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from coordinator.power.tariff import monday_before
from shared.errors import ConfigError

FIELDS = ("JobID", "Submit", "Start", "End", "Elapsed", "NNodes", "NCPUS", "AllocTRES", "State")
NOT_A_TIME = {"", "unknown", "none", "n/a"}
GPUS = re.compile(r"gres/gpu(?::[^=,]+)?=(\d+)")


@dataclass(frozen=True, slots=True)
class SacctJob:
    id: str
    submit_s: float  # from trace time 0, the Monday 00:00 UTC on or before the first submit
    runtime_s: float
    gpus: int
    cpus: int
    mem_bytes: int


def is_sacct(header: str) -> bool:
    names = header.strip().split("|")
    return "JobID" in names and "Submit" in names


def parse_sacct(lines: Iterable[str], name: str = "sacct") -> list[SacctJob]:
    """Jobs in submit order; a bad row is a ConfigError naming its line."""
    rows = csv.DictReader(lines, delimiter="|", quoting=csv.QUOTE_NONE)
    missing = [f for f in ("JobID", "Submit", "Start", "End") if f not in (rows.fieldnames or ())]
    if missing:
        raise ConfigError(f"{name}: not sacct --parsable2 output (no {', '.join(missing)} column)")
    found: list[tuple[str, float, float, int, int, int, int]] = []
    for number, row in enumerate(rows, start=2):
        try:
            job = _job(row)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{name}:{number}: {exc}") from None
        if job is not None:
            found.append(job)
    if not found:
        return []
    origin = monday_before(min(j[1] for j in found))
    jobs = [
        SacctJob(
            id=job_id if nodes == 1 else f"{job_id}+{i}",
            submit_s=submit - origin,
            runtime_s=runtime,
            gpus=gpus // nodes,
            cpus=max(cpus // nodes, 1),
            mem_bytes=mem // nodes,
        )
        for job_id, submit, runtime, gpus, cpus, mem, nodes in found
        for i in range(nodes)
    ]
    jobs.sort(key=lambda j: (j.submit_s, j.id))
    return jobs


def _job(row: dict[str, str]) -> tuple[str, float, float, int, int, int, int] | None:
    job_id = (row.get("JobID") or "").strip()
    if not job_id or "." in job_id or "[" in job_id:
        return None  # a step, or a pending array's placeholder
    start = _time(row.get("Start", ""))
    if start is None:
        return None  # never started
    submit = _time(row.get("Submit", "")) or start
    end = _time(row.get("End", ""))
    runtime = end - start if end is not None else _elapsed(row.get("Elapsed", ""))
    if runtime is None or runtime <= 0:
        return None
    tres = row.get("AllocTRES") or row.get("ReqTRES") or ""
    gpus = sum(int(n) for n in GPUS.findall(tres))
    cpus = int(row.get("NCPUS") or _tres(tres, "cpu") or 1)
    mem = _slurm_bytes(_tres(tres, "mem") or "0")
    nodes = max(int(row.get("NNodes") or 1), 1)
    return job_id, submit, runtime, gpus, cpus, mem, nodes


def _slurm_bytes(text: str) -> int:
    """Slurm's sizes: binary units, megabytes when unsaid (`64G`, `4000M`, `512`)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGTP]?)", text.strip().upper())
    if match is None:
        raise ValueError(f"not a Slurm size: {text!r}")
    power = "KMGTP".index(match.group(2) or "M") + 1
    return int(float(match.group(1)) * 1024**power)


def _tres(tres: str, key: str) -> str | None:
    for item in tres.split(","):
        name, _, value = item.partition("=")
        if name == key:
            return value
    return None


def _time(text: str) -> float | None:
    text = text.strip()
    if text.lower() in NOT_A_TIME:
        return None
    if text.isdigit():
        return float(text)
    when = datetime.fromisoformat(text)
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _elapsed(text: str) -> float | None:
    """[D-]HH:MM:SS (or MM:SS) as seconds."""
    text = text.strip()
    if not text or text.lower() in NOT_A_TIME:
        return None
    days, _, clock = text.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    hours, minutes, seconds = parts
    return (int(days) if days else 0) * 86400.0 + hours * 3600 + minutes * 60 + seconds
