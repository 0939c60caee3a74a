"""The v1 wire messages (see DESIGN.md, "Wire protocol"), validated on construction."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from shared.errors import SchemaError
from shared.fields import check_float, check_int, check_list, check_str
from shared.gpuhealth import Health
from shared.metrics import BY_NAME, MAX_VECTOR_LEN, Metric, Scope, metrics_in
from shared.wire import (
    Choice,
    Float,
    Int,
    ListOf,
    MapOf,
    Message,
    Name,
    Nested,
    Opt,
    Str,
    field,
)

MAX_GPUS = 64
MAX_SAMPLES = 10_000
MAX_ARGV = 1024
MAX_ARG_LEN = 4096
TAIL_CHARS = 4096  # of a job's stdout and of its stderr, with its end event
OUTPUT_BYTES = 16 * 1024  # of a job's output in one `job_output` answer
OUTPUT_CHARS = 3 * OUTPUT_BYTES  # decoded, each undecodable byte a 3-byte U+FFFD at worst
OUTPUT_STREAMS = frozenset({"stdout", "stderr"})
MAC_RE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
COMMAND_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
SLEEP_METHODS = frozenset({"systemctl-suspend", "rtcwake", "command", "dry-run"})
WAKE_METHODS = frozenset({"wol", "ipmi", "command"})
NODE_STATES = frozenset({"online", "sleeping", "offline"})
GPU_HEALTH = frozenset(h.value for h in Health)
EVENT_KINDS = frozenset(
    {
        "job_started",
        "job_finished",
        "job_lost",
        "job_running",
        "sleep_ack",
        "sleep_refused",
        "command_refused",  # the agent cannot verify a command (no key, another key)
        "job_output",  # a piece of a job's output, asked for with `FetchOutput`
        "seqs_gone",  # seqs seq_first..seq_last asked for (`Resend`) that the spool lacks
    }
)
TS = Float(0, 1e11)  # epoch seconds, finite and before the year 5138
MAX_METRICS = 64  # entries in one metrics map
SCOPED = {scope: {m.name: m for m in metrics_in(scope)} for scope in Scope}
NODE = Name()


def _mac(value: Any, path: str) -> str:
    return check_str(value, path, 17, MAC_RE)


@dataclass(frozen=True, slots=True)
class MetricValues:
    """A map of metric name to value, each checked against its declaration in `metrics`."""

    scope: Scope

    def __call__(self, value: Any, path: str) -> dict[str, Any]:
        fast = self._plain(value)
        if fast is not None:
            return fast
        checked = MapOf(Str(64), lambda v, _: v, MAX_METRICS)(value, path)
        return {name: self._value_of(name, v, f"{path}.{name}") for name, v in checked.items()}

    def _plain(self, value: Any) -> dict[str, Any] | None:
        """The common case, checked in one pass (an ingest worker's hottest loop): a map of
        known metric names to values of the exact type, in range. Anything else (None for
        an unknown wire shape) takes the checks below, which say what is wrong."""
        if type(value) is not dict or len(value) > MAX_METRICS:
            return None
        known = SCOPED[self.scope]
        out: dict[str, Any] = {}
        for name, v in value.items():
            metric = known.get(name)
            if metric is None:
                return None
            if v is None:
                out[name] = None
            elif metric.vector:
                if type(v) is not list or not _plain_vector(metric, v):
                    return None
                out[name] = tuple(v)
            elif _plainly_valid(metric, v):
                out[name] = v
            else:
                return None
        return out

    def _value_of(self, name: str, value: Any, path: str) -> Any:
        metric = BY_NAME.get(name)
        if metric is None or metric.scope is not self.scope:
            raise SchemaError(f"{path}: not a {self.scope} metric of protocol v1")
        if value is None:
            return None  # the hardware does not report it: explicit "no data"
        if metric.vector:
            items = check_list(value, path, MAX_VECTOR_LEN)
            if all(_plainly_valid(metric, v) for v in items):
                return tuple(items)
            return tuple(_scalar(metric, v, f"{path}[{i}]") for i, v in enumerate(items))
        return _scalar(metric, value, path)


def _plainly_valid(metric: Metric, value: Any) -> bool:
    """The common case, checked fast: the exact type, in range. NaN and inf fail the range
    test, so they take the strict path below and are refused there."""
    kind = type(value)
    return (kind is int if metric.integer else kind is float) and metric.lo <= value <= metric.hi


def _plain_vector(metric: Metric, items: list[Any]) -> bool:
    """`_plainly_valid` for every item, in C-level passes: one type, no NaN (it makes the
    sum NaN; an infinity fails the range), the extremes in range."""
    if not items:
        return True
    if len(items) > MAX_VECTOR_LEN or set(map(type, items)) != {int if metric.integer else float}:
        return False
    return not math.isnan(sum(items)) and metric.lo <= min(items) and max(items) <= metric.hi


def _scalar(metric: Metric, value: Any, path: str) -> float | int:
    if _plainly_valid(metric, value):
        return value
    if metric.integer:
        return check_int(value, path, int(metric.lo), int(metric.hi))
    return check_float(value, path, metric.lo, metric.hi)


NODE_VALUES = MetricValues(Scope.NODE)
SAMPLE_KEYS = frozenset({"ts", "metrics", "gpus"})


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuInfo(Message):
    index: int = field(Int(0, MAX_GPUS - 1))
    uuid: str = field(Str(96))
    name: str = field(Str(128))
    mem_total_bytes: int = field(Int())


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello(Message):
    """Identity and capacity, published retained on connect."""

    node: str = field(NODE)
    ts: float = field(TS)
    hostname: str = field(Str(255))
    agent_version: str = field(Str(64))
    cpus: int = field(Int(1, 1 << 20))
    mem_total_bytes: int = field(Int(1))
    macs: tuple[str, ...] = field(ListOf(_mac, 64), default=())
    gpus: tuple[GpuInfo, ...] = field(ListOf(Nested(GpuInfo), MAX_GPUS), default=())
    labels: dict[str, str] = field(MapOf(Name(), Str(256), 64), default_factory=dict)
    sleep_methods: tuple[str, ...] = field(ListOf(Choice(SLEEP_METHODS), 8), default=())
    wake_methods: tuple[str, ...] = field(ListOf(Choice(WAKE_METHODS), 8), default=())
    # the id of the command key the agent verifies with (`signing.key_id`), "" when it has
    # none; None from an agent older than key ids
    command_key: str | None = field(Opt(Str(16)), default=None)

    def to_wire(self) -> dict[str, Any]:
        data = Message.to_wire(self)
        if self.command_key is None:  # an old agent's hello, byte for byte
            del data["command_key"]
        return data

    def validate(self) -> None:
        indices = [g.index for g in self.gpus]
        if len(set(indices)) != len(indices):
            raise SchemaError("gpus: duplicate GPU index")


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuSample(Message):
    """One GPU's metrics, and the health the agent derived from them (`shared.gpuhealth`).

    A healthy GPU's sample leaves `health` and `reason` off the wire: what an agent of
    before GPU health sent, byte for byte."""

    index: int = field(Int(0, MAX_GPUS - 1))
    uuid: str = field(Str(96))
    metrics: dict[str, Any] = field(MetricValues(Scope.GPU))
    health: str = field(Choice(GPU_HEALTH), default=Health.OK.value)
    reason: str = field(Str(256), default="")

    def to_wire(self) -> dict[str, Any]:
        data = Message.to_wire(self)
        if self.health == Health.OK and not self.reason:
            del data["health"], data["reason"]
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample(Message):
    """One sampling pass. Its `seq` is implied by its place in the batch."""

    ts: float = field(TS)
    metrics: dict[str, Any] = field(NODE_VALUES)
    gpus: tuple[GpuSample, ...] = field(ListOf(Nested(GpuSample), MAX_GPUS), default=())

    @classmethod
    def from_wire(cls, data: object, path: str = "") -> Self:
        """A host-only sample in the common shape is built in one pass (an ingest worker
        decodes thousands a second); anything else takes the field checks, which say what
        is wrong. The two agree (hypothesis, `test_codec_fuzz`)."""
        plain = _plain_sample(cls, data)
        if plain is not None:
            return plain
        checked = Message.from_wire.__func__  # type: ignore[attr-defined]
        return checked(cls, data, path)


def _plain_sample(cls: type[Sample], data: object) -> Any:
    """`data` as a Sample when it is exactly what the checks pass unchanged: a float stamp
    in range, known metrics of their exact types, no GPUs; else None."""
    if type(data) is not dict or not data.keys() <= SAMPLE_KEYS:
        return None
    ts = data.get("ts")
    if type(ts) is not float or not TS.lo <= ts <= TS.hi:
        return None
    if "gpus" in data and (type(data["gpus"]) is not list or data["gpus"]):
        return None  # GPUs, or something the checks will refuse by name
    metrics = NODE_VALUES._plain(data.get("metrics"))
    if metrics is None:
        return None
    sample = object.__new__(cls)  # every field is checked above: the checks' own result
    for name, value in (("ts", ts), ("metrics", metrics), ("gpus", ())):
        object.__setattr__(sample, name, value)
    return sample


@dataclass(frozen=True, slots=True, kw_only=True)
class TelemetryBatch(Message):
    """Samples seq_first, seq_first+1, ...; `spool_dropped` counts samples the agent's full
    spool dropped since its previous batch, so the loss is visible, not silent.

    `stream_first` is the first seq of the agent's spool: a new spool (lost, wiped, replaced
    disk) starts its seqs at the wall clock in milliseconds, above any seq an older spool of
    the node can have reached at one sample per millisecond or slower, and says so here, so
    the coordinator neither files its samples as duplicates nor asks for the seqs between.
    0: a spool from before streams (seqs from 0)."""

    node: str = field(NODE)
    seq_first: int = field(Int())
    samples: tuple[Sample, ...] = field(ListOf(Nested(Sample), MAX_SAMPLES))
    spool_dropped: int = field(Int(), default=0)
    stream_first: int = field(Int(), default=0)

    def validate(self) -> None:
        if not self.samples:
            raise SchemaError("samples: a batch holds at least one sample")
        if self.seq_last > Int().hi:
            raise SchemaError("seq_first: the batch runs past the largest seq")
        if self.stream_first > self.seq_first:
            raise SchemaError("stream_first: a stream's first seq is not after its batches")

    @property
    def seq_last(self) -> int:
        return self.seq_first + len(self.samples) - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Status(Message):
    node: str = field(NODE)
    ts: float = field(TS)
    state: str = field(Choice(NODE_STATES))


@dataclass(frozen=True, slots=True, kw_only=True)
class Event(Message):
    node: str = field(NODE)
    ts: float = field(TS)
    kind: str = field(Choice(EVENT_KINDS))
    job_id: str | None = field(Opt(Name()), default=None)
    exit_code: int | None = field(Opt(Int(-255, 255)), default=None)
    runtime_s: float | None = field(Opt(Float(0, 1e9)), default=None)
    energy_j: float | None = field(Opt(Float(0, 1e15)), default=None)
    # a job's end: its GPUs' mean utilisation over its run (what chargeback's "GPU-hours
    # used" weighs its allocation by); absent for a job without GPUs
    gpu_util_pct: float | None = field(Opt(Float(0, 100)), default=None)
    detail: str = field(Str(1024), default="")
    # a job's end (`job_finished`, `job_lost`): the last `TAIL_CHARS` of its output, kept
    # by the coordinator so it reads even while the node sleeps
    stdout_tail: str = field(Str(TAIL_CHARS), default="")
    stderr_tail: str = field(Str(TAIL_CHARS), default="")
    # `job_output`: the answer to request `request`: the output's bytes from
    # `output_offset` up to `output_next`, decoded, of a file `output_size` bytes long now
    request: int | None = field(Opt(Int()), default=None)
    output: str = field(Str(OUTPUT_CHARS), default="")
    output_offset: int | None = field(Opt(Int()), default=None)
    output_next: int | None = field(Opt(Int()), default=None)
    output_size: int | None = field(Opt(Int()), default=None)
    # `seqs_gone`: the range of a resend request the agent's spool no longer holds
    seq_first: int | None = field(Opt(Int()), default=None)
    seq_last: int | None = field(Opt(Int()), default=None)

    def to_wire(self) -> dict[str, Any]:
        data = Message.to_wire(self)
        for name in OPTIONAL_EVENT_FIELDS:
            if data[name] in ("", None):  # what agents sent before, exactly
                del data[name]
        return data

    def validate(self) -> None:
        if (self.kind.startswith("job_") or self.kind == "command_refused") and not self.job_id:
            raise SchemaError(f"job_id: missing, required for {self.kind}")
        if self.kind == "job_finished" and self.exit_code is None:
            raise SchemaError("exit_code: missing, required for job_finished")
        if self.kind == "job_output" and self.request is None:
            raise SchemaError("request: missing, required for job_output")
        if self.kind == "seqs_gone" and (
            self.seq_first is None or self.seq_last is None or self.seq_last < self.seq_first
        ):
            raise SchemaError("seq_first, seq_last: a range is required for seqs_gone")


OPTIONAL_EVENT_FIELDS = (
    "stdout_tail",
    "stderr_tail",
    "gpu_util_pct",
    "request",
    "output",
    "output_offset",
    "output_next",
    "output_size",
    "seq_first",
    "seq_last",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunJob(Message):
    OP: ClassVar[str] = "run"
    job_id: str = field(Name())
    argv: tuple[str, ...] = field(ListOf(Str(MAX_ARG_LEN), MAX_ARGV))
    gpus: tuple[int, ...] = field(ListOf(Int(0, MAX_GPUS - 1), MAX_GPUS), default=())
    cpus: int = field(Int(0, 1 << 20), default=0)
    mem_bytes: int = field(Int(), default=0)
    runtime_limit_s: float | None = field(Opt(Float(0, 1e9)), default=None)

    def validate(self) -> None:
        if not self.argv:
            raise SchemaError("argv: a job needs a command")


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelJob(Message):
    OP: ClassVar[str] = "cancel"
    job_id: str = field(Name())
    grace_s: float = field(Float(0, 3600), default=10.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sleep(Message):
    OP: ClassVar[str] = "sleep"
    reason: str = field(Str(256), default="")


@dataclass(frozen=True, slots=True, kw_only=True)
class Resend(Message):
    OP: ClassVar[str] = "resend"
    from_seq: int = field(Int())
    to_seq: int = field(Int())

    def validate(self) -> None:
        if self.to_seq < self.from_seq:
            raise SchemaError("to_seq: smaller than from_seq")


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchOutput(Message):
    """Send back up to `limit` bytes of a job's stdout or stderr from byte `offset` (a
    negative offset counts from the end: -16384 is the last 16 KiB), as a `job_output`
    event answering `request`."""

    OP: ClassVar[str] = "output"
    job_id: str = field(Name())
    request: int = field(Int())
    stream: str = field(Choice(OUTPUT_STREAMS), default="stdout")
    offset: int = field(Int(-(1 << 62), 1 << 62), default=-OUTPUT_BYTES)
    limit: int = field(Int(1, OUTPUT_BYTES), default=OUTPUT_BYTES)


CommandBody = RunJob | CancelJob | Sleep | Resend | FetchOutput
BODY_TYPES: dict[str, type[CommandBody]] = {
    b.OP: b for b in (RunJob, CancelJob, Sleep, Resend, FetchOutput)
}


def _body(value: Any, path: str) -> CommandBody:
    if isinstance(value, RunJob | CancelJob | Sleep | Resend | FetchOutput):
        return value
    if not isinstance(value, dict):
        raise SchemaError(f"{path}: expected a map, got {type(value).__name__}")
    fields = dict(value)
    op = Choice(frozenset(BODY_TYPES))(fields.pop("op", None), f"{path}.op")
    return BODY_TYPES[op].from_wire(fields, path)


@dataclass(frozen=True, slots=True, kw_only=True)
class Command(Message):
    """A coordinator-to-agent command. `sig` is the HMAC over everything else
    (see shared.signing); an unsigned command has `sig == b""`."""

    id: str = field(lambda v, p: check_str(v, p, 64, COMMAND_ID_RE))
    node: str = field(NODE)
    issued_at: float = field(TS)
    expires_at: float = field(TS)
    body: CommandBody = field(_body)
    sig: bytes = field(lambda v, p: _bytes(v, p, 64), default=b"")
    epoch: int = field(Int(), default=0)  # the signing leader's; 0: a single coordinator

    def validate(self) -> None:
        if self.expires_at <= self.issued_at:
            raise SchemaError("expires_at: not after issued_at")

    def to_wire(self) -> dict[str, Any]:
        """Epoch 0 stays off the wire: what a coordinator from before leadership sent."""
        wire = Message.to_wire(self)
        wire["body"] = {"op": self.body.OP, **self.body.to_wire()}
        if not self.epoch:
            del wire["epoch"]
        return wire


def _bytes(value: Any, path: str, max_len: int) -> bytes:
    if not isinstance(value, bytes):
        raise SchemaError(f"{path}: expected bytes, got {type(value).__name__}")
    if len(value) > max_len:
        raise SchemaError(f"{path}: longer than {max_len} bytes")
    return value


WireMessage = Hello | TelemetryBatch | Status | Event | Command
