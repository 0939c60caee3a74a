"""The HMAC key that signs commands: written once, readable by its owner only.

Written to a temporary file beside the target and renamed over it, so a symlink at the
target (dangling or not) is replaced, never followed, and a crash leaves the old key or
the new one, never half of one.
"""

from __future__ import annotations

import os
from pathlib import Path

from shared.errors import ConfigError
from shared.signing import generate_key


def write_key_file(path: Path, *, force: bool) -> Path | None:
    """Write a new key; returns the directory it had to create (said to the user), if any."""
    if (path.exists() or path.is_symlink()) and not force:
        raise ConfigError(f"{path} exists; pass --force to replace it (agents need the new key)")
    created = _ensure_directory(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(generate_key() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    return created


def _ensure_directory(directory: Path) -> Path | None:
    """Create the key's directory (one level, 0755) when its parent exists; a missing
    chain is more likely a typo than an install step, so it is refused."""
    if directory.is_dir():
        return None
    if not directory.parent.is_dir():
        raise ConfigError(f"cannot write a key in {directory}: {directory.parent} does not exist")
    try:
        directory.mkdir(mode=0o755)
    except OSError as exc:
        raise ConfigError(f"cannot create {directory}: {exc.strerror or exc}") from None
    return directory
