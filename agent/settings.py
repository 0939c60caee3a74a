"""The agent's configuration schema (see shared.config for how it is loaded)."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path

from shared.config import (
    BrokerUrl,
    default_data_dir,
    parse_broker_url,
    parse_log_level,
    parse_node,
    parse_path,
    setting,
)

DEFAULT_CONFIG_PATH = Path("/etc/dormouse/agent.toml")


def default_node_name() -> str:
    """The short host name, with characters a topic cannot hold replaced by '-'."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname().split(".")[0])[:64]
    return name if name.strip(".") else "node"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConfig:
    node: str = setting(default_node_name(), parse_node, "node name, unique in the fleet")
    broker: BrokerUrl = setting(
        parse_broker_url("mqtt://127.0.0.1:1883"), parse_broker_url, "MQTT broker URL"
    )
    spool_dir: Path = setting(
        default_data_dir("dormouse-agent"), parse_path, "on-disk spool of telemetry batches"
    )
    command_key_file: Path = setting(
        Path("/etc/dormouse/command.key"), parse_path, "HMAC key for verifying commands"
    )
    log_level: str = setting("INFO", parse_log_level, "debug, info, warning or error")
