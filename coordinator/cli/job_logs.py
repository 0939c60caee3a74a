"""`dormouse jobs logs ID [--stderr] [--tail N] [--follow] [--wake]`: a job's output, read
from its node while the node is awake (over the signed command channel, through the
leader), else the end the coordinator kept when the job ended."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer

from coordinator.cli.common import PROG, DbOption, JsonOption, fail, positive_duration, store
from coordinator.core.jobstate import ACTIVE, JobState
from coordinator.services import jobs as jobs_service
from coordinator.services import output as output_service
from coordinator.services import power as power_service
from shared.edge.config_cli import ConfigOption
from shared.edge.console import print_json, reported_errors
from shared.messages import TAIL_CHARS

FOLLOW_EVERY_S = 1.0
ENDED = frozenset(s.value for s in JobState) - {s.value for s in ACTIVE}


def logs(
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID", help="job id")],
    stderr: Annotated[bool, typer.Option("--stderr", help="its stderr, not its stdout")] = False,
    tail: Annotated[
        int | None, typer.Option("--tail", metavar="N", min=1, help="only the last N lines")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="keep printing what it writes until it ends")
    ] = False,
    wake: Annotated[
        bool, typer.Option("--wake", help="wake its node if it sleeps, to read it there")
    ] = False,
    wake_wait: Annotated[
        str, typer.Option("--wake-wait", metavar="DURATION", help="how long --wake waits")
    ] = "10m",
    as_json: JsonOption = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """A job's output: the last 16 KiB from its node while the node is awake (--follow:
    then all it writes, until it ends); while the node sleeps, the last 4 KiB kept when the
    job ended, or --wake to wake the node and read it there."""
    wait_s = positive_duration(wake_wait, "--wake-wait")
    engine = store(config, db)
    stream = "stderr" if stderr else "stdout"
    with reported_errors(PROG):
        kept = jobs_service.logs(engine, job_id)
    node = kept["node"]
    if node is None:
        fail(f"job {job_id} is {kept['state']}: it has run on no node yet", code=1)
    if kept["node_state"] != "online" and wake:
        _wake(engine, job_id, node, wait_s)
    elif kept["node_state"] != "online":
        _kept(kept, stream, tail, as_json=as_json)
        return
    with reported_errors(PROG):
        piece = output_service.fetch(engine, job_id, stream)
    if as_json:
        print_json(kept | {"live": piece})
    else:
        _write(_last_lines(piece, tail))
    while follow and not (piece["state"] in ENDED and piece["next"] >= piece["size"]):
        time.sleep(FOLLOW_EVERY_S)
        with reported_errors(PROG):
            piece = output_service.fetch(engine, job_id, stream, piece["next"])
        if as_json:
            typer.echo(json.dumps(piece))
        else:
            _write(piece["output"])


def _kept(kept: dict[str, Any], stream: str, tail: int | None, *, as_json: bool) -> None:
    """The node sleeps: the end kept with the job's end event, said to be only that."""
    text = kept[stream]
    node, state = kept["node"], kept["node_state"]
    if text is None:
        fail(
            f"job {kept['id']} is {kept['state']} on {node}, which is {state}: its output "
            "waits on the node's disk; --wake wakes the node to read it",
            code=1,
        )
    if as_json:
        print_json(kept | {"live": None})
        return
    typer.echo(
        f"{PROG}: {node} is {state}: this is the last {TAIL_CHARS // 1024} KiB kept when the "
        "job ended; --wake reads it all from the node",
        err=True,
    )
    lines = text.splitlines(keepends=True)
    _write("".join(lines[-tail:] if tail else lines))


def _wake(engine: Any, job_id: str, node: str, wait_s: float) -> None:
    """Ask the leader to wake the job's node, and wait until the node is back."""
    typer.echo(f"{PROG}: waking {node} to read the job's output there", err=True)
    with reported_errors(PROG):
        power_service.request(engine, node, "wake", force=False, now=time.time())
    deadline = time.monotonic() + wait_s
    while (state := jobs_service.logs(engine, job_id)["node_state"]) != "online":
        if time.monotonic() > deadline:
            fail(f"{node} is still {state} after {wait_s:g}s: the wake did not bring it back")
        time.sleep(1.0)


def _last_lines(piece: dict[str, Any], tail: int | None) -> str:
    """The piece's whole lines (its first is cut when it starts inside the file), the last
    `tail` of them."""
    lines = piece["output"].splitlines(keepends=True)
    if piece["offset"] > 0 and lines:
        lines = lines[1:]
    return "".join(lines[-tail:] if tail else lines)


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
