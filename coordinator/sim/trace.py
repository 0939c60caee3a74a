"""Job traces, pure (text in, jobs out); the format is picked from the header.

* dormouse CSV: `submit_s, runtime_s, gpus, cpus, mem_gb, deadline_s` (`deadline_s`, an
  absolute time in seconds like `submit_s`, may be missing or empty; then
  `--deadline-factor K` gives submit + K x runtime).
* ElasticFlow (Microsoft ITP traces): `job_id, submission_time, num_iteration, model_name,
  deadline, batch_size, num_gpu, duration`. Their deadline column is about 1x the duration
  (ElasticFlow resizes jobs to meet it), so it is ignored and the factor applies; CPUs and
  memory are not recorded: `--cpus-per-gpu` and `--mem-per-gpu` stand in.
* Slurm's accounting, `sacct --parsable2` (`|`-separated, a `JobID` and `Submit` column):
  `coordinator.slurm.sacct` says which rows are jobs and how they are read; the factor
  gives the deadlines.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from coordinator.slurm.sacct import is_sacct, parse_sacct
from shared.errors import ConfigError

GIB = 2**30
NATIVE = ("submit_s", "runtime_s", "gpus", "cpus", "mem_gb")
ELASTICFLOW = ("job_id", "submission_time", "num_gpu", "duration")


@dataclass(frozen=True, slots=True)
class TraceJob:
    id: str
    submit_s: float
    runtime_s: float
    gpus: int
    cpus: int
    mem_bytes: int
    deadline_s: float | None


@dataclass(frozen=True, slots=True)
class TraceOptions:
    deadline_factor: float | None = None
    cpus_per_gpu: int = 4
    mem_per_gpu_bytes: int = 32 * GIB


def parse_trace(lines: Iterable[str], options: TraceOptions, name: str = "trace") -> list[TraceJob]:
    """Jobs in submit order. Raises ConfigError naming the line of the first bad row."""
    lines = iter(lines)
    first = next(lines, "")
    if is_sacct(first):
        return [
            TraceJob(
                id=j.id, submit_s=j.submit_s, runtime_s=j.runtime_s, gpus=j.gpus, cpus=j.cpus,
                mem_bytes=j.mem_bytes,
                deadline_s=_deadline(j.submit_s, j.runtime_s, "", options),
            )
            for j in parse_sacct(itertools.chain([first], lines), name)
        ]  # fmt: skip
    rows = csv.DictReader(itertools.chain([first], lines))
    header = tuple(h.strip() for h in rows.fieldnames or ())
    parse: RowParser
    if all(c in header for c in NATIVE):
        parse = _native
    elif all(c in header for c in ELASTICFLOW):
        parse = _elasticflow
    else:
        raise ConfigError(
            f"{name}: unknown trace format (header {', '.join(header) or 'missing'}); expected "
            f"{', '.join(NATIVE)}[, deadline_s] or the ElasticFlow columns"
        )
    jobs = list(_rows(rows, parse, options, name))
    jobs.sort(key=lambda j: (j.submit_s, j.id))
    return jobs


RowParser = Callable[[dict[str, str], int, TraceOptions], TraceJob]


def _rows(
    rows: csv.DictReader[str], parse: RowParser, options: TraceOptions, name: str
) -> Iterator[TraceJob]:
    for number, raw in enumerate(rows, start=2):
        row = {k.strip(): (v or "").strip() for k, v in raw.items() if k}
        try:
            job = parse(row, number, options)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{name}:{number}: {exc}") from None
        if job.runtime_s <= 0 or job.submit_s < 0 or job.gpus < 0 or job.cpus < 0:
            raise ConfigError(f"{name}:{number}: times and sizes must not be negative")
        yield job


def _deadline(submit: float, runtime: float, given: str, options: TraceOptions) -> float | None:
    if given:
        return float(given)
    if options.deadline_factor is None:
        return None
    return submit + options.deadline_factor * runtime


def _native(row: dict[str, str], number: int, options: TraceOptions) -> TraceJob:
    submit, runtime = float(row["submit_s"]), float(row["runtime_s"])
    return TraceJob(
        id=row.get("job_id") or f"line{number}",
        submit_s=submit,
        runtime_s=runtime,
        gpus=int(row["gpus"]),
        cpus=int(row["cpus"]),
        mem_bytes=int(float(row["mem_gb"]) * GIB),
        deadline_s=_deadline(submit, runtime, row.get("deadline_s", ""), options),
    )


def _elasticflow(row: dict[str, str], number: int, options: TraceOptions) -> TraceJob:
    submit, runtime, gpus = (
        float(row["submission_time"]),
        float(row["duration"]),
        int(row["num_gpu"]),
    )
    return TraceJob(
        id=row["job_id"] or f"line{number}",
        submit_s=submit,
        runtime_s=runtime,
        gpus=gpus,
        cpus=gpus * options.cpus_per_gpu or 1,
        mem_bytes=max(gpus, 1) * options.mem_per_gpu_bytes,
        deadline_s=_deadline(submit, runtime, "", options),
    )
