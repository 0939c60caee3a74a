"""The HMAC key that signs commands: written once, readable by its owner only."""

from __future__ import annotations

import os
from pathlib import Path

from shared.errors import ConfigError
from shared.signing import generate_key


def write_key_file(path: Path, *, force: bool) -> None:
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to replace it (agents need the new key)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(generate_key() + "\n")
    path.chmod(0o600)
