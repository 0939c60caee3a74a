"""Log a recurring condition once, not once per sample (a lost GPU, an unreadable file)."""

from __future__ import annotations

import logging


class LogOnce:
    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._seen: set[object] = set()

    def warning(self, key: object, message: str, *args: object) -> None:
        self._log(logging.WARNING, key, message, *args)

    def info(self, key: object, message: str, *args: object) -> None:
        self._log(logging.INFO, key, message, *args)

    def _log(self, level: int, key: object, message: str, *args: object) -> None:
        if key not in self._seen:
            self._seen.add(key)
            self._logger.log(level, message, *args)
