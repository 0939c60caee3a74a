"""Strict readers for maps that arrive from outside (wire payloads, config files).

Every check names the full path of the field it refuses, so a dropped message or a bad
config line can be fixed without guessing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from shared.errors import SchemaError

NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
INT64_MAX = 2**63 - 1


class FieldReader:
    """Reads typed fields out of one untrusted map; `done()` refuses keys nobody read."""

    def __init__(self, data: object, path: str = "") -> None:
        if not isinstance(data, Mapping):
            raise SchemaError(f"{path or 'payload'}: expected a map, got {type_name(data)}")
        self._data: Mapping[Any, Any] = data
        self._path = path
        self._seen: set[str] = set()

    def path(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def raw(self, key: str, *, optional: bool = False) -> Any:
        self._seen.add(key)
        if key not in self._data or (optional and self._data[key] is None):
            if optional:
                return None
            raise SchemaError(f"{self.path(key)}: missing")
        return self._data[key]

    def done(self) -> None:
        unknown = sorted(str(k) for k in self._data if k not in self._seen)
        if unknown:
            raise SchemaError(f"{self._path or 'payload'}: unknown field(s) {', '.join(unknown)}")


def type_name(value: object) -> str:
    return type(value).__name__


def check_int(value: object, path: str, lo: int = 0, hi: int = INT64_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SchemaError(f"{path}: expected an integer, got {type_name(value)}")
    if not lo <= value <= hi:
        raise SchemaError(f"{path}: {value} is outside [{lo}, {hi}]")
    return value


def check_float(value: object, path: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    """Accepts ints too (msgpack packs 3.0 as a float but producers may send 3)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SchemaError(f"{path}: expected a number, got {type_name(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise SchemaError(f"{path}: {value} is not a finite number")
    if not lo <= number <= hi:
        raise SchemaError(f"{path}: {value} is outside [{lo}, {hi}]")
    return number


def check_str(
    value: object, path: str, max_len: int = 256, pattern: re.Pattern[str] | None = None
) -> str:
    if not isinstance(value, str):
        raise SchemaError(f"{path}: expected a string, got {type_name(value)}")
    if len(value) > max_len:
        raise SchemaError(f"{path}: longer than {max_len} characters")
    if pattern is not None and not pattern.fullmatch(value):
        raise SchemaError(f"{path}: {value[:80]!r} does not match {pattern.pattern}")
    return value


def check_list(value: object, path: str, max_len: int) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise SchemaError(f"{path}: expected a list, got {type_name(value)}")
    if len(value) > max_len:
        raise SchemaError(f"{path}: more than {max_len} items")
    return list(value)


def check_choice(value: str, path: str, choices: frozenset[str]) -> str:
    if value not in choices:
        raise SchemaError(f"{path}: {value!r} is not one of {', '.join(sorted(choices))}")
    return value


def check_name(value: object, path: str) -> str:
    """Node names, metric names, labels: what may appear in a topic or a column."""
    return check_str(value, path, 64, NAME_RE)
