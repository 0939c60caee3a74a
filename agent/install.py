"""`dormouse-agent install`: the systemd unit and a commented config, under a root.

Writes `<root>/etc/systemd/system/dormouse-agent.service` (ExecStart is this installation's
`dormouse-agent`) and, unless one is there, `<root>/etc/dormouse/agent.toml`: the file given
with `--config`, or every key at its default, commented out, with what it does.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from agent.settings import AgentConfig
from agent.units import AGENT, render
from shared.config import shown

UNIT_PATH = Path("etc/systemd/system/dormouse-agent.service")
CONFIG_PATH = Path("etc/dormouse/agent.toml")


@dataclass(frozen=True, slots=True)
class Installed:
    unit: Path
    config: Path
    config_written: bool


def executable() -> str:
    """This installation's `dormouse-agent` (beside the running Python, as pip puts it)."""
    beside = Path(sys.executable).parent / "dormouse-agent"
    return str(beside if beside.exists() else shutil.which("dormouse-agent") or beside)


def install(root: Path, config: Path | None) -> Installed:
    unit, target = root / UNIT_PATH, root / CONFIG_PATH
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(render(AGENT, executable(), "/" + str(CONFIG_PATH)))
    unit.chmod(0o644)
    written = not target.exists()
    if written:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(config.read_text() if config else commented_config())
        target.chmod(0o640)
    return Installed(unit, target, written)


def commented_config() -> str:
    lines = [
        "# dormouse-agent configuration: every key at its default. Uncomment to change;",
        "# DORMOUSE_<KEY> environment variables override this file. See docs/agent.md.",
    ]
    tables: dict[str, list[str]] = {}
    for key, text, _, doc in shown(AgentConfig()):
        table, _, leaf = key.rpartition(".")
        line = ["", f"# {doc}", f"# {leaf} = {text}"]
        if table:
            tables.setdefault(table, []).extend(line)
        else:
            lines += line
    for table, keys in tables.items():  # TOML tables come after the top-level keys
        lines += ["", f"[{table}]", *keys[1:]]
    return "\n".join(lines) + "\n"
