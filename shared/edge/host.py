"""Facts about this host that both programs need."""

from __future__ import annotations

import re
import socket


def default_node_name() -> str:
    """The short host name, with characters a topic cannot hold replaced by '-'."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname().split(".")[0])[:64]
    return name if name.strip(".") else "node"
