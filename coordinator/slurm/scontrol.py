"""Slurm's `scontrol`, the I/O edge: read the nodes, update one. Async subprocesses with a
time limit, so a hung slurmctld delays the Slurm pass and nothing else."""

from __future__ import annotations

import asyncio
import shlex

from coordinator.slurm.nodes import SlurmNode, parse_show_node

TIMEOUT_S = 20.0


class ScontrolError(Exception):
    """scontrol could not be run, or said no; the message is its last line."""


class Scontrol:
    def __init__(self, command: str) -> None:
        self._argv = shlex.split(command)

    async def nodes(self) -> list[SlurmNode]:
        return parse_show_node(await self._run("--oneliner", "show", "node"))

    async def update(self, node: str, state: str, reason: str | None = None) -> None:
        args = ["update", f"NodeName={node}", f"State={state}"]
        if reason is not None:
            args.append(f"Reason={reason}")
        await self._run(*args)

    async def _run(self, *args: str) -> str:
        argv = [*self._argv, *args]
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
        except OSError as exc:
            raise ScontrolError(f"cannot run {argv[0]}: {exc.strerror}") from None
        try:
            out, err = await asyncio.wait_for(process.communicate(), TIMEOUT_S)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise ScontrolError(f"{shlex.join(argv)} took over {TIMEOUT_S:g}s") from None
        if process.returncode != 0:
            last = err.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
            raise ScontrolError(f"{shlex.join(argv)} exited {process.returncode}: {last[0]}")
        return out.decode(errors="replace")
