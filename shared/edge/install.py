"""Installing a daemon under a root: its systemd unit (ExecStart is this installation's
executable) and, unless one is there, its config: a given file, or every key at its default,
commented out, with what it does. `dormouse-agent install` and `dormouse install` share it.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Annotated, Any

import typer

from shared.config import shown
from shared.errors import ConfigError
from shared.unitfiles import relaxed, render

UNIT_DIR = Path("etc/systemd/system")


@dataclass(frozen=True, slots=True)
class Installed:
    unit: Path
    config: Path
    config_written: bool
    notes: tuple[str, ...] = ()  # protections relaxed in the unit, and why


@dataclass(frozen=True, slots=True)
class Daemon:
    program: str  # the console script, e.g. dormouse-agent
    unit_name: str  # e.g. dormouse-agent.service
    template: Template
    config_path: Path  # relative to the root, e.g. etc/dormouse/agent.toml
    defaults: Callable[[], Any]  # the config at its defaults, for the commented file
    docs: str  # where the keys are explained


def executable(program: str) -> str:
    """This installation's `program` (beside the running Python, as pip puts it)."""
    beside = Path(sys.executable).parent / program
    return str(beside if beside.exists() else shutil.which(program) or beside)


def install(daemon: Daemon, root: Path, config: Path | None) -> Installed:
    unit, target = root / UNIT_DIR / daemon.unit_name, root / daemon.config_path
    try:
        unit.parent.mkdir(parents=True, exist_ok=True)
        program = executable(daemon.program)
        text, notes = relaxed(render(daemon.template, program, f"/{daemon.config_path}"), program)
        unit.write_text(text)
        unit.chmod(0o644)
        written = not target.exists()
        if written:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(config.read_text() if config else commented_config(daemon))
            target.chmod(0o640)
    except OSError as exc:
        raise ConfigError(f"install: {exc.strerror}: {exc.filename}") from None
    return Installed(unit, target, written, tuple(notes))


def commented_config(daemon: Daemon) -> str:
    lines = [
        f"# {daemon.program} configuration: every key at its default. Uncomment to change;",
        f"# DORMOUSE_<KEY> environment variables override this file. See {daemon.docs}.",
    ]
    tables: dict[str, list[str]] = {}
    for key, text, _, doc in shown(daemon.defaults()):
        table, _, leaf = key.rpartition(".")
        line = ["", f"# {doc}", f"# {leaf} = {text}"]
        if table:
            tables.setdefault(table, []).extend(line)
        else:
            lines += line
    for table, keys in tables.items():  # TOML tables come after the top-level keys
        lines += ["", f"[{table}]", *keys[1:]]
    return "\n".join(lines) + "\n"


RootOption = Annotated[Path, typer.Option("--root", help="write under this directory")]
ConfigFileOption = Annotated[
    Path | None, typer.Option("--config", help="install this config (else a commented one)")
]


def say_installed(done: Installed, *then: str) -> None:
    """What was written, then the operator's next steps."""
    typer.echo(f"wrote {done.unit}")
    typer.echo(f"{'wrote' if done.config_written else 'kept the existing'} {done.config}")
    for note in done.notes:
        typer.echo(f"note: {note}")
    for i, step in enumerate(then):
        typer.echo(f"{'then: ' if i == 0 else '      '}{step}")
