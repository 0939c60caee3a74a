"""One job's directory on the node: the only state a job has outside the agent's memory.
Its files are named in `shared/jobfiles.py`.

Because the wrapper owns the job and writes the result itself, a job outlives an agent
restart, and the restarted agent learns its fate from here.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from shared.jobfiles import PID, REPORTED, RESULT, SPEC
from shared.messages import TAIL_CHARS


@dataclass(frozen=True, slots=True)
class Spec:
    job_id: str
    argv: list[str]
    gpus: list[int]
    started_at: float
    runtime_limit_s: float | None
    log_max_bytes: int
    user: str = ""
    cpus: int = 0  # allocated: the job's share of the host's energy (`shared.jobenergy`)


@dataclass(frozen=True, slots=True)
class Result:
    exit_code: int
    ended_at: float
    truncated_bytes: int = 0


def write_atomically(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def write_spec(directory: Path, spec: Spec) -> None:
    write_atomically(directory / SPEC, asdict(spec))


def read_spec(directory: Path) -> Spec:
    return Spec(**json.loads((directory / SPEC).read_text()))


def write_result(directory: Path, result: Result) -> None:
    write_atomically(directory / RESULT, asdict(result))


def read_result(directory: Path) -> Result | None:
    try:
        return Result(**json.loads((directory / RESULT).read_text()))
    except FileNotFoundError:
        return None


def read_pid(directory: Path) -> int | None:
    try:
        return int((directory / PID).read_text())
    except (FileNotFoundError, ValueError):
        return None  # not started yet (or mid-write)


def read_text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def tails(directory: Path) -> dict[str, str]:
    """The last `TAIL_CHARS` of the job's stdout and stderr (undecodable bytes replaced),
    for its end event: read from the end of each file, however large it grew."""
    found = {}
    for stream in ("stdout", "stderr"):
        try:
            with (directory / stream).open("rb") as handle:
                handle.seek(max(handle.seek(0, os.SEEK_END) - 4 * TAIL_CHARS, 0))
                text = handle.read().decode("utf-8", errors="replace")
        except OSError:
            text = ""
        found[f"{stream}_tail"] = text[-TAIL_CHARS:]
    return found


@dataclass(frozen=True, slots=True)
class Piece:
    """Part of an output file: `text` decodes its bytes `start` to `next`, of `size`."""

    text: str
    start: int
    next: int
    size: int


def read_piece(path: Path, offset: int, limit: int) -> Piece:
    """Up to `limit` bytes from `offset` (negative: from the end), ending on a whole UTF-8
    character so that the next piece, from `next`, decodes cleanly. Raises OSError."""
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        start = max(0, size + offset) if offset < 0 else min(offset, size)
        handle.seek(start)
        data = handle.read(limit)
    cut = _whole(data)
    return Piece(data[:cut].decode("utf-8", errors="replace"), start, start + cut, size)


def _whole(data: bytes) -> int:
    """The length of `data` without a UTF-8 character cut off at its end."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80 or byte >= 0xF8:  # ASCII, or no UTF-8 at all: nothing to wait for
            return len(data)
        if byte >= 0xC0:  # a lead byte: whole when its sequence fits in what follows
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return len(data) if back >= need else len(data) - back
    return len(data)


def unfinished(jobs_dir: Path) -> list[Path]:
    """Job directories whose job has not been reported as over."""
    if not jobs_dir.is_dir():
        return []
    return sorted(
        d for d in jobs_dir.iterdir() if (d / SPEC).is_file() and not (d / REPORTED).exists()
    )


def count_running(jobs_dir: Path) -> int:
    return sum(1 for d in unfinished(jobs_dir) if not (d / RESULT).exists())


def expired(jobs_dir: Path, before: float) -> list[Path]:
    """Directories of jobs reported as over before `before` (epoch seconds)."""
    if not jobs_dir.is_dir():
        return []
    old = []
    for directory in jobs_dir.iterdir():
        try:
            if (directory / REPORTED).stat().st_mtime < before:
                old.append(directory)
        except FileNotFoundError:
            continue
    return sorted(old)
