"""Request bodies and query strings, checked field by field (pure: no I/O).

Every refusal names the field and the reason, so a client gets a 422 it can act on, and an
unknown field is refused rather than ignored (a typo such as `gpu` for `gpus` would otherwise
queue a job without its GPU).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from coordinator.core.jobstate import JobRecord
from coordinator.placement.balance import Strategy
from coordinator.placement.model import Request
from coordinator.settings import parse_account
from shared.config import parse_labels
from shared.errors import DormouseError
from shared.messages import MAX_ARGV
from shared.units import parse_duration, parse_size

MAX_ARG_CHARS = 4096
MAX_NAME = 128
MAX_WAIT_S = 60.0
T = TypeVar("T")


class Invalid(DormouseError):
    """A field of a request is missing, of the wrong type or out of range."""

    reason = "invalid"

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field, self.why = field, why


@dataclass(frozen=True, slots=True)
class PowerAsk:
    force: bool
    wait_s: float


@dataclass(frozen=True, slots=True)
class PickAsk:
    request: Request
    strategy: Strategy
    key: str | None


def obj(body: object, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise Invalid("body", "expected a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise Invalid(unknown[0], f"unknown field (fields: {', '.join(sorted(allowed))})")
    return body


def whole(
    body: Mapping[str, Any], field: str, default: int, *, low: int = 0, high: int = 10**6
) -> int:
    value = body.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(field, f"expected a whole number, got {value!r}")
    if not low <= value <= high:
        raise Invalid(field, f"expected {low} to {high}, got {value}")
    return value


def seconds(body: Mapping[str, Any], field: str, default: float | None) -> float | None:
    """A positive number of seconds, or a duration string ("30m"); null only where the
    default is None (no deadline)."""
    value = body.get(field, default)
    if value is None and default is None:
        return None
    try:
        if not isinstance(value, int | float | str):
            raise TypeError(value)
        number = parse_duration(value)
    except (ValueError, TypeError):
        raise Invalid(field, f"expected seconds or a duration such as 30m, got {value!r}") from None
    if not 0 < number < 10 * 365 * 86400:
        raise Invalid(field, f"expected more than 0 seconds and under 10 years, got {value!r}")
    return number


def text(body: Mapping[str, Any], field: str, default: str, limit: int = MAX_NAME) -> str:
    value = body.get(field, default)
    if not isinstance(value, str) or len(value) > limit:
        raise Invalid(field, f"expected a string of at most {limit} characters")
    return value


def flag(body: Mapping[str, Any], field: str) -> bool:
    value = body.get(field, False)
    if not isinstance(value, bool):
        raise Invalid(field, f"expected true or false, got {value!r}")
    return value


def checked(field: str, parse: Callable[[Any], T], value: Any) -> T:
    """A shared parser's refusal (ValueError, or its own DormouseError) as this field's."""
    try:
        return parse(value)
    except (ValueError, TypeError, DormouseError) as exc:
        raise Invalid(field, str(exc)) from None


def argv(body: Mapping[str, Any]) -> tuple[str, ...]:
    value = body.get("argv")
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_ARGV:
        raise Invalid("argv", f"expected a list of 1 to {MAX_ARGV} strings (the program first)")
    if not all(isinstance(a, str) and len(a) <= MAX_ARG_CHARS for a in value) or not value[0]:
        raise Invalid("argv", f"every item a string of at most {MAX_ARG_CHARS} characters")
    return tuple(value)


def labels(body: Mapping[str, Any]) -> dict[str, str]:
    value = body.get("labels", {})
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise Invalid("labels", 'expected an object of strings, e.g. {"rack": "r1"}')
    return checked("labels", parse_labels, ",".join(f"{k}={v}" for k, v in value.items()))


def memory(body: Mapping[str, Any]) -> int:
    value = body.get("mem", 0)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise Invalid("mem", f"expected bytes or a size such as 4G, got {value!r}")
    return checked("mem", parse_size, value)


JOB_FIELDS = {"argv", "cpus", "mem", "gpus", "runtime_s", "deadline_s"}
JOB_FIELDS |= {"priority", "name", "labels", "requeue", "account"}


def job(
    body: object, job_id: str, now: float, user: str = "", account: str = "default"
) -> JobRecord:
    """`POST /api/v1/jobs`: the same job `dormouse submit` makes; `deadline_s` is from now.
    `user`: the token's name; `account`: the default when the body names none."""
    fields = obj(body, JOB_FIELDS)
    deadline_in = seconds(fields, "deadline_s", None)
    charged_to = checked("account", parse_account, fields.get("account", account))
    return JobRecord(
        id=job_id,
        argv=argv(fields),
        submitted_at=now,
        name=text(fields, "name", ""),
        cpus=whole(fields, "cpus", 1),
        mem_bytes=memory(fields),
        gpus=whole(fields, "gpus", 0, high=1024),
        labels=labels(fields),
        runtime_s=seconds(fields, "runtime_s", 3600.0) or 3600.0,
        deadline=None if deadline_in is None else now + deadline_in,
        priority=whole(fields, "priority", 0, low=-(10**6)),
        requeue=flag(fields, "requeue"),
        account=charged_to,
        user=user[:64],
    )


def power(body: object) -> PowerAsk:
    """`POST /api/v1/nodes/{node}/sleep|wake|clear`: {"force": false, "wait_s": 0}."""
    fields = obj({} if body is None else body, {"force", "wait_s"})
    wait = fields.get("wait_s", 0)
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait <= MAX_WAIT_S:
        raise Invalid("wait_s", f"expected 0 to {MAX_WAIT_S:g} seconds, got {wait!r}")
    return PowerAsk(flag(fields, "force"), float(wait))


def pick(body: object) -> PickAsk:
    """`POST /api/v1/pick`: what `dormouse pick` takes, as fields."""
    fields = obj(body, {"cpus", "gpus", "labels", "strategy", "key"})
    request = Request(
        cpus=whole(fields, "cpus", 0),
        mem_bytes=0,
        gpus=whole(fields, "gpus", 0, high=1024),
        labels=labels(fields),
    )
    name = text(fields, "strategy", Strategy.LEAST_CONNECTIONS.value)
    try:
        strategy = Strategy(name)
    except ValueError:
        choices = ", ".join(s.value for s in Strategy)
        raise Invalid("strategy", f"expected one of {choices}") from None
    key = fields.get("key")
    if key is not None and (not isinstance(key, str) or len(key) > MAX_NAME):
        raise Invalid("key", f"expected a string of at most {MAX_NAME} characters")
    if strategy is Strategy.AFFINITY and not key:
        raise Invalid("key", "the affinity strategy needs a key")
    return PickAsk(request, strategy, key)


def count(query: Mapping[str, str], field: str, default: int, low: int, high: int) -> int:
    """A whole number from a query string."""
    raw = query.get(field, str(default))
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise Invalid(field, f"expected a whole number from {low} to {high}, got {raw!r}")
    return int(raw)


def limit(query: Mapping[str, str], default: int, high: int = 100_000) -> int:
    return count(query, "limit", default, 1, high)


def duration(query: Mapping[str, str], field: str, default: str) -> float:
    value = seconds({field: query.get(field, default)}, field, None)
    return float(value or 0.0)
