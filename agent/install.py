"""`dormouse-agent install`: the agent's systemd unit and a commented
`/etc/dormouse/agent.toml`, under a root (shared/edge/install.py does the writing)."""

from __future__ import annotations

from pathlib import Path

from agent.settings import AgentConfig
from shared.edge.install import Daemon
from shared.unitfiles import AGENT

AGENT_DAEMON = Daemon(
    program="dormouse-agent",
    unit_name="dormouse-agent.service",
    template=AGENT,
    config_path=Path("etc/dormouse/agent.toml"),
    defaults=AgentConfig,
    docs="docs/agent.md",
)
