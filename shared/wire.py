"""A small declarative engine for wire messages.

Each message is a frozen dataclass whose fields carry a `Check` in their metadata. The same
checks run when a message is built locally (`__post_init__`) and when one arrives from the
network (`from_wire`), so nothing invalid can be sent and nothing invalid is accepted.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any, ClassVar, Self

from shared.errors import SchemaError
from shared.fields import (
    INT64_MAX,
    FieldReader,
    check_choice,
    check_float,
    check_int,
    check_list,
    check_name,
    check_str,
    type_name,
)

Check = Callable[[Any, str], Any]


def field(check: Check, **kw: Any) -> Any:
    """A dataclass field validated by `check(value, path)`, which returns the normal form."""
    return dc_field(metadata={"check": check}, **kw)


@dataclass(frozen=True, slots=True)
class Int:
    lo: int = 0
    hi: int = INT64_MAX

    def __call__(self, value: Any, path: str) -> int:
        return check_int(value, path, self.lo, self.hi)


@dataclass(frozen=True, slots=True)
class Float:
    lo: float = -math.inf
    hi: float = math.inf

    def __call__(self, value: Any, path: str) -> float:
        return check_float(value, path, self.lo, self.hi)


@dataclass(frozen=True, slots=True)
class Str:
    max_len: int = 256

    def __call__(self, value: Any, path: str) -> str:
        return check_str(value, path, self.max_len)


@dataclass(frozen=True, slots=True)
class Name:
    """Node names, job ids, label keys: `[A-Za-z0-9._-]{1,64}`."""

    def __call__(self, value: Any, path: str) -> str:
        return check_name(value, path)


@dataclass(frozen=True, slots=True)
class Choice:
    choices: frozenset[str]

    def __call__(self, value: Any, path: str) -> str:
        return check_choice(check_str(value, path, 64), path, self.choices)


@dataclass(frozen=True, slots=True)
class Opt:
    inner: Check

    def __call__(self, value: Any, path: str) -> Any:
        return None if value is None else self.inner(value, path)


@dataclass(frozen=True, slots=True)
class ListOf:
    item: Check
    max_len: int

    def __call__(self, value: Any, path: str) -> tuple[Any, ...]:
        items = check_list(value, path, self.max_len)
        return tuple(self.item(v, f"{path}[{i}]") for i, v in enumerate(items))


@dataclass(frozen=True, slots=True)
class MapOf:
    key: Check
    value: Check
    max_len: int

    def __call__(self, value: Any, path: str) -> dict[Any, Any]:
        if not isinstance(value, Mapping):
            raise SchemaError(f"{path}: expected a map, got {type_name(value)}")
        if len(value) > self.max_len:
            raise SchemaError(f"{path}: more than {self.max_len} entries")
        return {self.key(k, f"{path} key"): self.value(v, f"{path}.{k}") for k, v in value.items()}


@dataclass(frozen=True, slots=True)
class Nested:
    """A field holding another message: accepts an instance, or its wire map."""

    cls: type[Message]

    def __call__(self, value: Any, path: str) -> Message:
        if isinstance(value, self.cls):
            return value
        return self.cls.from_wire(value, path)


class Message:
    """Mixin for frozen wire dataclasses: validation, `to_wire` and `from_wire`."""

    __slots__ = ()
    WIRE_OMIT: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        for name, check in _layout(type(self)).checks:
            object.__setattr__(self, name, check(getattr(self, name), name))
        self.validate()

    def validate(self) -> None:
        """Cross-field rules; single-field rules live in each field's check."""

    def to_wire(self) -> dict[str, Any]:
        return {
            f.name: to_plain(getattr(self, f.name))
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if f.name not in self.WIRE_OMIT
        }

    @classmethod
    def from_wire(cls, data: object, path: str = "") -> Self:
        reader = FieldReader(data, path)
        kwargs = {}
        for name, has_default in _layout(cls).wire:
            value = reader.raw(name, optional=has_default)
            if value is not None or not has_default:
                kwargs[name] = value
        reader.done()
        try:
            return cls(**kwargs)
        except SchemaError as exc:
            raise SchemaError(f"{path}.{exc}" if path else str(exc)) from None


@dataclass(frozen=True, slots=True)
class Layout:
    """What a message class's fields ask of each message, read once per class."""

    checks: tuple[tuple[str, Check], ...]  # (name, check) of each checked field
    wire: tuple[tuple[str, bool], ...]  # (name, has a default) of each field on the wire


_LAYOUTS: dict[type, Layout] = {}


def _layout(cls: type[Message]) -> Layout:
    found = _LAYOUTS.get(cls)
    if found is None:
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        found = _LAYOUTS[cls] = Layout(
            tuple((f.name, f.metadata["check"]) for f in fields if "check" in f.metadata),
            tuple(
                (f.name, f.default is not dataclasses.MISSING)
                for f in fields
                if f.name not in cls.WIRE_OMIT
            ),
        )
    return found


def to_plain(value: Any) -> Any:
    """Messages to maps, tuples to lists: what msgpack should see."""
    if isinstance(value, Message):
        return value.to_wire()
    if isinstance(value, tuple | list):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    return value
