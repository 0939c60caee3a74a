"""How both daemons log: one line per record on stderr (journald under systemd), with the
time, so a log file or a pipe reads on its own."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
QUIET = ("alembic",)  # its INFO lines ("Context impl SQLiteImpl ...") say nothing to operators


def configure(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=level, format=FORMAT, datefmt=DATE_FORMAT)
    for name in QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
