"""`dormouse`: the entry point. It imports the app (`coordinator/cli/root.py`) only once it
knows it must: `dormouse --version` answers from here, in the time Python takes to start."""

from __future__ import annotations

import sys
from typing import Any

from coordinator import __version__


def main() -> None:
    """Database errors that escape a command (the server went away mid-way) end in one line
    and exit 1, like every other error, not a traceback."""
    if sys.argv[1:] in (["--version"], ["version"]):
        print(f"dormouse {__version__}")
        return
    from coordinator.cli.root import PROG, app  # noqa: PLC0415 - see the module's docstring

    try:
        app()
    except Exception as exc:
        if not type(exc).__module__.startswith("sqlalchemy"):
            raise
        from coordinator.services.store import db_reason  # noqa: PLC0415 - only on error

        print(f"{PROG}: error: db: {db_reason(exc)}", file=sys.stderr)
        raise SystemExit(1) from None


def _slurm_program(program: str) -> None:
    """Slurm runs SuspendProgram and friends as one executable with the hostlist as its one
    argument (slurm.conf cannot give it more words), so each program is its own command."""
    sys.argv[1:1] = ["slurm", program]
    main()


def slurm_suspend() -> None:
    """`dormouse-slurm-suspend HOSTLIST`, slurm.conf's SuspendProgram."""
    _slurm_program("suspend")


def slurm_resume() -> None:
    """`dormouse-slurm-resume HOSTLIST`, slurm.conf's ResumeProgram."""
    _slurm_program("resume")


def slurm_resume_fail() -> None:
    """`dormouse-slurm-resume-fail HOSTLIST`, slurm.conf's ResumeFailProgram."""
    _slurm_program("resume-fail")


def __getattr__(name: str) -> Any:
    """`from coordinator.main import app` (tests, scripts) still finds the app."""
    if name == "app":
        from coordinator.cli.root import app  # noqa: PLC0415

        return app
    raise AttributeError(name)
