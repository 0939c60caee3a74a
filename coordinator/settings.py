"""The coordinator's configuration schema (see shared.config for how it is loaded)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from coordinator.power.defer import DeferPolicy
from coordinator.power.policy import PowerPolicy
from shared.config import (
    NO_FILE,
    BrokerUrl,
    MqttSecurity,
    default_data_dir,
    list_items,
    parse_bool,
    parse_broker_url,
    parse_choice,
    parse_labels,
    parse_log_level,
    parse_node,
    parse_path,
    parse_port,
    parse_positive_seconds,
    parse_str,
    section,
    setting,
    table_items,
)
from shared.units import parse_duration

DEFAULT_CONFIG_PATH = Path("/etc/dormouse/coordinator.toml")


SUPPORTED_DATABASES = {"sqlite": {"pysqlite"}, "postgresql": {"psycopg"}}  # installed drivers


def parse_db_url(value: Any) -> str:
    """A SQLAlchemy URL (sqlite:///path, postgresql+psycopg://user@host/db); empty: default."""
    text = parse_str(value).strip()
    if not text:
        return text
    try:
        url = make_url(text)
    except ArgumentError:
        raise ValueError(f"not a database URL: {text!r} (e.g. sqlite:///dormouse.db)") from None
    backend = url.get_backend_name()
    if backend == "postgres":
        raise ValueError(f"{backend}:// is not a SQLAlchemy name: use postgresql+psycopg://")
    if (
        backend not in SUPPORTED_DATABASES
        or url.get_driver_name() not in SUPPORTED_DATABASES[backend]
    ):
        raise ValueError(
            f"{url.drivername}: dormouse stores in SQLite or PostgreSQL "
            "(sqlite:///path/dormouse.db, postgresql+psycopg://user@host/db)"
        )
    return text


def parse_count(value: Any) -> int:
    number = int(value) if isinstance(value, str) and value.strip().isdigit() else value
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ValueError(f"expected a whole number >= 1, got {value!r}")
    return number


@dataclass(frozen=True, slots=True, kw_only=True)
class Retention:
    raw: float = setting(7 * 86400.0, parse_positive_seconds, "keep raw samples this long")
    minute: float = setting(90 * 86400.0, parse_positive_seconds, "keep minute rollups")
    hour: float = setting(730 * 86400.0, parse_positive_seconds, "keep hour rollups")
    delete_batch: int = setting(5000, parse_count, "rows deleted per statement")


def parse_factor(value: Any) -> float:
    number = float(value) if isinstance(value, str) else value
    if isinstance(number, bool) or not isinstance(number, int | float) or not 0 <= number < 1e6:
        raise ValueError(f"expected a number >= 0, got {value!r}")
    return float(number)


def parse_fraction(value: Any) -> float:
    number = parse_factor(value)
    if number >= 1:
        raise ValueError(f"expected a fraction from 0 to under 1, got {value!r}")
    return number


AUTO = "auto"


def parse_fraction_or_auto(value: Any) -> float | str:
    """`auto` (sized to the fleet: `power.defer.DeferPolicy.sized`) or a fraction."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    try:
        return parse_fraction(value)
    except ValueError:
        raise ValueError(f"expected auto or a fraction from 0 to under 1, got {value!r}") from None


def parse_forecast_alpha(value: Any) -> float:
    number = parse_factor(value)
    if not 0 < number <= 1:
        raise ValueError(f"expected a weight over 0, at most 1, got {value!r}")
    return number


def parse_balance_factor(value: Any) -> float:
    number = parse_factor(value)
    if number < 1:
        raise ValueError(f"expected a number >= 1 (1 is perfectly even), got {value!r}")
    return number


@dataclass(frozen=True, slots=True, kw_only=True)
class Jobs:
    schedule_interval: float = setting(1.0, parse_positive_seconds, "time between placement passes")
    runtime_limit_factor: float = setting(
        2.0, parse_factor, "kill a job past runtime estimate x this (0: never)"
    )
    lost_after: float = setting(
        300.0, parse_positive_seconds, "a job whose node is offline this long is lost"
    )
    dispatch_retry: float = setting(
        30.0, parse_positive_seconds, "send a placed job again if it has not started by then"
    )
    cancel_grace: float = setting(
        10.0, parse_positive_seconds, "SIGTERM, then SIGKILL this long after, on cancel"
    )
    balance_factor: float = setting(
        1.25, parse_balance_factor, "pick --strategy affinity: a key spills past this x mean load"
    )


def parse_listen(value: Any) -> str:
    """HOST:PORT, e.g. 127.0.0.1:9464; empty for off."""
    text = parse_str(value).strip()
    if text:
        host, sep, port = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"expected HOST:PORT, e.g. 127.0.0.1:9464, got {value!r}")
        parse_port(port)
    return text


def parse_seconds0(value: Any) -> float:
    """A duration that may be 0 (off)."""
    seconds = parse_duration(value)
    if seconds < 0:
        raise ValueError(f"must be 0 or more, got {value!r}")
    return seconds


def parse_count0(value: Any) -> int:
    number = int(value) if isinstance(value, str) and value.strip().isdigit() else value
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise ValueError(f"expected a whole number >= 0, got {value!r}")
    return number


def parse_pct(value: Any) -> float:
    number = parse_factor(value)
    if number > 100:
        raise ValueError(f"expected a percentage 0..100, got {value!r}")
    return number


def parse_names(value: Any) -> frozenset[str]:
    """["login1", "db1"], or "login1,db1"."""
    return frozenset(parse_node(item) for item in list_items(value, "node names"))


def parse_costs(value: Any) -> dict[str, float]:
    """{gpu1 = 1.2}, or "gpu1=1.2,gpu2=0.8"."""
    return {parse_node(k): parse_factor(v) for k, v in table_items(value, "costs").items()}


def parse_amount(value: Any) -> float:
    """Money: a number >= 0 (a fleet's monthly budget may pass a million)."""
    number = float(value) if isinstance(value, str) else value
    if isinstance(number, bool) or not isinstance(number, int | float) or not 0 <= number < 1e15:
        raise ValueError(f"expected an amount >= 0, got {value!r}")
    return float(number)


@dataclass(frozen=True, slots=True)
class NodeType:
    """`[cost.types.NAME]`: the costs of the nodes whose labels match (`match = {gpu =
    "a100"}`) or whose names match (`nodes = "gpu*"`)."""

    name: str
    match: dict[str, str]
    nodes: str
    hardware_price: float
    hardware_life: float
    fixed_per_node_hour: float | None = None

    def covers(self, node: str, labels: dict[str, str]) -> bool:
        named = not self.nodes or fnmatch.fnmatchcase(node, self.nodes)
        return named and all(labels.get(k) == v for k, v in self.match.items())

    @property
    def hardware_per_hour(self) -> float:
        return self.hardware_price / (self.hardware_life / 3600)


FOUR_YEARS_S = 4 * 365 * 86400.0
TYPE_KEYS = {"match", "nodes", "hardware_price", "hardware_life", "fixed_per_node_hour"}


def parse_types(value: Any) -> dict[str, dict[str, Any]]:
    """[cost.types.a100] match = {gpu = "a100"}, hardware_price = 250000, hardware_life =
    "1460d", fixed_per_node_hour = 1.5 (the first type, by name, that covers a node is its).
    Kept as checked tables, so `config show` prints what reads back."""
    found = {}
    for name, body in sorted(table_items(value, "node types").items()):
        fields = table_items(body, f"type {name}")
        unknown = set(fields) - TYPE_KEYS
        if unknown:
            raise ValueError(f"type {name}: unknown key {sorted(unknown)[0]!r}")
        if "match" not in fields and "nodes" not in fields:
            raise ValueError(f"type {name}: say which nodes it is (match = {{k = v}} or nodes)")
        checked: dict[str, Any] = {
            "match": parse_labels(fields.get("match", {})),
            "nodes": parse_str(fields.get("nodes", "")),
            "hardware_price": parse_amount(fields.get("hardware_price", 0)),
            "hardware_life": parse_positive_seconds(fields.get("hardware_life", FOUR_YEARS_S)),
        }
        if "fixed_per_node_hour" in fields:
            checked["fixed_per_node_hour"] = parse_factor(fields["fixed_per_node_hour"])
        found[parse_node(name)] = checked
    return found


def parse_account_budgets(value: Any) -> dict[str, dict[str, float]]:
    """[cost.accounts.team-a] budget = 500 (per budget_period); `{team-a = 500}` or, from
    the environment, "team-a=500,ops=50" for short."""
    found = {}
    for name, body in table_items(value, "accounts").items():
        fields = (
            table_items(body, f"account {name}") if isinstance(body, dict) else {"budget": body}
        )
        if set(fields) - {"budget"}:
            raise ValueError(f"account {name}: only budget is set per account")
        found[parse_account(name)] = {"budget": parse_amount(fields.get("budget", 0))}
    return found


def parse_account(value: Any) -> str:
    text = parse_str(value)
    if not 1 <= len(text) <= 64 or not text.isprintable() or text.strip() != text:
        raise ValueError(f"an account is 1 to 64 printable characters, got {value!r}")
    return text


@dataclass(frozen=True, slots=True, kw_only=True)
class Power:
    sleep_idle: bool = setting(False, parse_bool, "put idle nodes to sleep (off: only wake)")
    idle_after: float = setting(
        900.0, parse_positive_seconds, "a node idle this long may be put to sleep"
    )
    cpu_idle_pct: float = setting(10.0, parse_pct, "CPU utilisation under which a node is idle")
    gpu_idle_pct: float = setting(5.0, parse_pct, "GPU utilisation under which a node is idle")
    min_awake: int = setting(1, parse_count0, "never fewer awake nodes than this")
    spare_gpus: int = setting(0, parse_count0, "free GPUs kept awake for new work")
    spare: str = setting(
        "fixed",
        parse_choice("fixed", "forecast"),
        "spare_gpus as set (fixed), or sized from forecast demand x wake time (forecast)",
    )
    spare_max_gpus: int = setting(16, parse_count0, "with spare = forecast: at most this many")
    forecast_alpha: float = setting(
        0.5, parse_forecast_alpha, "with spare = forecast: the newest week's weight, 0 to 1"
    )
    min_awake_time: float = setting(
        600.0, parse_positive_seconds, "a node stays up at least this long before sleeping"
    )
    min_asleep_time: float = setting(
        120.0, parse_positive_seconds, "a node sleeps at least this long before a wake"
    )
    max_sleeps_per_min: int = setting(2, parse_count0, "sleep commands sent per minute, at most")
    resume_timeout: float = setting(
        300.0, parse_positive_seconds, "a woken node not back by then is failed (until learned)"
    )
    resume_timeout_factor: float = setting(
        3.0, parse_factor, "once wakes are measured: timeout = this x p95 wake time (0: fixed)"
    )
    resume_timeout_floor: float = setting(
        60.0, parse_positive_seconds, "the learned resume timeout is never shorter than this"
    )
    first_wake_timeout: float = setting(
        900.0,
        parse_seconds0,
        "until a node's own wakes are measured, its resume timeout is at least this (0: off)",
    )
    never_sleep: frozenset[str] = setting(frozenset(), parse_names, "nodes never put to sleep")
    resume_latency: float = setting(
        60.0, parse_positive_seconds, "assumed resume time until wakes have been measured"
    )
    wol_broadcast: str = setting("255.255.255.255", parse_str, "Wake-on-LAN target address")
    wol_port: int = setting(9, parse_port, "Wake-on-LAN UDP port")
    ipmi_command: str = setting(
        "", parse_str, "wake by IPMI: command template, {node} {hostname} {mac} filled in"
    )
    wake_command: str = setting(
        "", parse_str, "wake by a custom command: template, {node} {hostname} {mac}"
    )

    def policy(self) -> PowerPolicy:
        return PowerPolicy(
            sleep_idle=self.sleep_idle,
            idle_after_s=self.idle_after,
            cpu_idle_pct=self.cpu_idle_pct,
            gpu_idle_pct=self.gpu_idle_pct,
            min_awake=self.min_awake,
            spare_gpus=self.spare_gpus,
            spare=self.spare,
            spare_max_gpus=self.spare_max_gpus,
            forecast_alpha=self.forecast_alpha,
            min_awake_time_s=self.min_awake_time,
            min_asleep_time_s=self.min_asleep_time,
            max_sleeps_per_min=self.max_sleeps_per_min,
            resume_timeout_s=self.resume_timeout,
            resume_timeout_factor=self.resume_timeout_factor,
            resume_timeout_floor_s=self.resume_timeout_floor,
            first_wake_timeout_s=self.first_wake_timeout,
            never_sleep=self.never_sleep,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Cost:
    price_kwh: float = setting(0.15, parse_factor, "energy price per kWh")
    fixed_per_node_hour: float = setting(
        0.0, parse_factor, "fixed cost per node-hour (amortisation, licences, operations)"
    )
    fixed_per_hour: dict[str, float] = field(
        default_factory=dict,
        metadata={
            "parse": parse_costs,
            "doc": "per-node fixed cost per hour, over fixed_per_node_hour: {gpu1 = 1.2}",
        },
    )
    sleep_power_w: float = setting(5.0, parse_factor, "a sleeping node's power draw (W)")
    idle_power_w: float = setting(
        100.0, parse_factor, "idle power assumed for a node with no idle samples (W)"
    )
    budget: float = setting(0.0, parse_amount, "the fleet's limit per budget_period (0: none)")
    budget_period: str = setting(
        "month", parse_choice("day", "week", "month"), "day, week or month"
    )
    hardware_price: float = setting(0.0, parse_amount, "a node's purchase price (amortised)")
    hardware_life: float = setting(
        FOUR_YEARS_S, parse_positive_seconds, "over how long hardware is amortised (1460d)"
    )
    types: dict[str, dict[str, Any]] = field(
        default_factory=dict,
        metadata={
            "parse": parse_types,
            "doc": 'per node type: [cost.types.a100] match = {gpu = "a100"}, '
            "hardware_price, hardware_life, fixed_per_node_hour",
        },
    )
    idle_cost: str = setting(
        "fleet",
        parse_choice("fleet", "shared"),
        "what no job held: the fleet's own row (fleet), or spread over accounts by use",
    )
    default_account: str = setting(
        "", parse_str, "a job's account when none is given (empty: the submitter's user name)"
    )
    accounts: dict[str, dict[str, float]] = field(
        default_factory=dict,
        metadata={
            "parse": parse_account_budgets,
            "doc": "budgets per account and budget_period: [cost.accounts.team-a] budget = 500",
        },
    )
    over_budget: str = setting(
        "warn",
        parse_choice("warn", "hold", "deprioritise"),
        "an account past its budget: warn only, hold its new jobs, or place them last",
    )
    budget_check: float = setting(
        300.0, parse_positive_seconds, "how often the leader adds up what accounts spent"
    )
    waste_util_pct: float = setting(
        5.0, parse_pct, "a running job's GPUs under this utilisation are wasted"
    )
    waste_after: float = setting(
        1800.0, parse_positive_seconds, "for this long before the job is flagged"
    )
    waste_action: str = setting(
        "none", parse_choice("none", "cancel"), "a flagged job: only flagged, or cancelled"
    )

    def node_type(self, node: str, labels: dict[str, str]) -> NodeType | None:
        kinds = (NodeType(name, **fields) for name, fields in sorted(self.types.items()))
        return next((t for t in kinds if t.covers(node, labels)), None)

    def budgets(self) -> dict[str, float]:
        """Account -> its budget per period (0: none)."""
        return {name: fields["budget"] for name, fields in self.accounts.items()}

    def fixed_rate(self, node: str, labels: dict[str, str]) -> float:
        """Per hour: the node's own, else its type's, else fixed_per_node_hour."""
        if node in self.fixed_per_hour:
            return self.fixed_per_hour[node]
        kind = self.node_type(node, labels)
        if kind is not None and kind.fixed_per_node_hour is not None:
            return kind.fixed_per_node_hour
        return self.fixed_per_node_hour

    def hardware_rate(self, node: str, labels: dict[str, str]) -> float:
        kind = self.node_type(node, labels)
        if kind is not None:
            return kind.hardware_per_hour
        return self.hardware_price / (self.hardware_life / 3600)

    tariff: Path = setting(
        NO_FILE, parse_path, "CSV of price per kWh by hour (hour,price) or time (time,price)"
    )
    carbon: Path = setting(
        NO_FILE, parse_path, "CSV of gCO2 per kWh (hour,gco2_per_kwh or time,gco2_per_kwh)"
    )
    defer_by: str = setting(
        "price",
        parse_choice("price", "carbon", "off"),
        "hold jobs with slack for a cheaper (price) or cleaner (carbon) window, or off",
    )
    defer_undeadlined: bool = setting(False, parse_bool, "hold jobs without a deadline too")
    max_defer: float = setting(86_400.0, parse_positive_seconds, "no job is held longer")
    defer_min_saving: float = setting(
        0.03, parse_fraction, "hold only for a window this much cheaper (0.03: 3 %)"
    )
    defer_keep_slack: float | str = setting(
        AUTO,
        parse_fraction_or_auto,
        "share of a job's slack a hold must leave (for the queue); auto: sized to the fleet",
    )
    defer_fill: float | str = setting(
        AUTO,
        parse_fraction_or_auto,
        "held jobs book at most this share of the fleet in any hour; auto: sized to the fleet",
    )

    def defer_policy(self) -> DeferPolicy:
        return DeferPolicy(
            by=self.defer_by,
            undeadlined=self.defer_undeadlined,
            max_defer_s=self.max_defer,
            min_saving=self.defer_min_saving,
            keep_slack=None if self.defer_keep_slack == AUTO else float(self.defer_keep_slack),
            fill=None if self.defer_fill == AUTO else float(self.defer_fill),
        )


def parse_http_listen(value: Any) -> str:
    """HOST:PORT, or a bare PORT for localhost; empty for off."""
    text = parse_str(value).strip()
    return parse_listen(f"127.0.0.1:{text}" if text.isdigit() else text)


def parse_node_map(value: Any) -> dict[str, str]:
    """{gpu01 = "gpu01.lab"}: Slurm's node name -> the dormouse node (its agent's name)."""
    return {parse_node(k): parse_node(v) for k, v in table_items(value, "node names").items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class Slurm:
    enabled: bool = setting(
        False,
        parse_bool,
        "Slurm mode: Slurm places the jobs (dormouse refuses submissions); dormouse watches "
        "Slurm's nodes, carries out its power programs and returns nodes a slow resume left DOWN",
    )
    decides: str = setting(
        "slurm",
        parse_choice("slurm", "dormouse"),
        "who chooses the nodes to sleep: slurm (its SuspendTime) or dormouse (its idle policy, "
        "asked of Slurm with `scontrol update State=POWER_DOWN`)",
    )
    scontrol: str = setting("scontrol", parse_str, "the scontrol command (path)")
    sacct: str = setting("sacct", parse_str, "the sacct command (path), for `slurm advise`")
    watch_every: float = setting(
        30.0, parse_positive_seconds, "how often the leader reads Slurm's node states"
    )
    rewake_after: float = setting(
        60.0,
        parse_positive_seconds,
        "first retry of the wake of a node Slurm holds DOWN whose agent is not back (doubling "
        "with each try, up to 30 min), through the node's next wake method",
    )
    node_map: dict[str, str] = field(
        default_factory=dict,
        metadata={
            "parse": parse_node_map,
            "doc": 'Slurm node name -> dormouse node, where they differ: {gpu01 = "gpu01-lab"}',
        },
    )
    log_file: Path = setting(
        NO_FILE,
        parse_path,
        "where `dormouse slurm suspend|resume|resume-fail` log (empty: DATA_DIR/slurm.log)",
    )

    def dormouse_name(self, slurm_name: str) -> str:
        return self.node_map.get(slurm_name, slurm_name)


@dataclass(frozen=True, slots=True, kw_only=True)
class Http:
    listen: str = setting(
        "", parse_http_listen, "serve the API and console on HOST:PORT (a bare port: localhost)"
    )
    tls_cert: Path = setting(NO_FILE, parse_path, "PEM certificate: serve HTTPS (with tls_key)")
    tls_key: Path = setting(NO_FILE, parse_path, "PEM private key of tls_cert")
    anonymous_read: bool = setting(
        False, parse_bool, "reads without a token (only on a network you trust)"
    )


ROLE_ALL, ROLE_INGEST, ROLE_LEADER = "all", "ingest", "leader"
ROLES = (ROLE_ALL, ROLE_INGEST, ROLE_LEADER)
MQTT_RECEIVE_MAXIMUM = 65_535  # the protocol's bound (a two-byte property)


def parse_receive_maximum(value: Any) -> int:
    count = parse_count0(value)
    if count > MQTT_RECEIVE_MAXIMUM:
        raise ValueError(f"at most {MQTT_RECEIVE_MAXIMUM} (MQTT 5 Receive Maximum), got {count}")
    return count


@dataclass(frozen=True, slots=True, kw_only=True)
class CoordinatorConfig:
    broker: BrokerUrl = setting(
        parse_broker_url("mqtt://127.0.0.1:1883"), parse_broker_url, "MQTT broker URL"
    )
    client_id: str = setting(
        "dormouse-coordinator", parse_node, "MQTT client id (a persistent session)"
    )
    db: str = setting("", parse_db_url, "SQLAlchemy URL; empty: SQLite file in data_dir")
    data_dir: Path = setting(
        default_data_dir("dormouse"), parse_path, "state directory (SQLite file, logs)"
    )
    command_key_file: Path = setting(
        Path("/etc/dormouse/command.key"), parse_path, "HMAC key for signing commands"
    )
    offline_after: float = setting(
        30.0, parse_positive_seconds, "a node silent this long is offline"
    )
    flush_interval: float = setting(
        0.25, parse_positive_seconds, "longest a received sample waits to be written"
    )
    flush_samples: int = setting(2000, parse_count, "write as soon as this many are waiting")
    max_buffered_samples: int = setting(
        200_000, parse_count, "samples held while the database is down; then stop taking"
    )
    resend_retry: float = setting(30.0, parse_positive_seconds, "ask again for a gap after")
    leader_lease: float = setting(
        10.0, parse_positive_seconds, "a standby takes over this long after the leader dies"
    )
    role: str = setting(
        ROLE_ALL,
        parse_choice(*ROLES),
        "all (one process does everything), ingest (telemetry to the store) or leader "
        "(placement, power, gaps, rollups); ingest and leader need PostgreSQL",
    )
    share_group: str = setting(
        "dormouse", parse_node, "the MQTT shared-subscription group ingest workers join"
    )
    receive_maximum: int = setting(
        20_000,
        parse_receive_maximum,
        "MQTT 5: messages the broker may send unacknowledged (each is acknowledged once "
        "stored); 0: MQTT 3.1.1, acknowledged on receipt (brokers without MQTT 5)",
    )
    max_clock_skew: float = setting(
        300.0, parse_positive_seconds, "refuse samples stamped further ahead of this clock"
    )
    max_nodes: int = setting(
        20_000, parse_count, "nodes known at most; a hello from one more is refused"
    )
    rollup_interval: float = setting(60.0, parse_positive_seconds, "how often rollups run")
    rollup_grace: float = setting(
        120.0, parse_positive_seconds, "roll a minute up this long after it ends"
    )
    retention: Retention = section(Retention, "how long each tier is kept")
    jobs: Jobs = section(Jobs, "placement and job lifecycle")
    mqtt: MqttSecurity = section(MqttSecurity, "TLS and password files for an mqtts:// broker")
    power: Power = section(Power, "sleep and wake policy")
    cost: Cost = section(Cost, "energy price, fixed costs, budget")
    http: Http = section(Http, "the HTTP API and web console (`dormouse token create`)")
    slurm: Slurm = section(Slurm, "dormouse as Slurm's power brain (docs/slurm.md)")
    metrics_listen: str = setting(
        "", parse_listen, "serve Prometheus /metrics on HOST:PORT (empty: off)"
    )
    log_level: str = setting("INFO", parse_log_level, "debug, info, warning or error")

    @property
    def db_url(self) -> str:
        return self.db or f"sqlite:///{self.data_dir / 'dormouse.db'}"

    def cross_check(self) -> str | None:
        """What settings valid one by one cannot do together (`dormouse run` and `dormouse
        config check` refuse it): split roles share one PostgreSQL and need MQTT 5."""
        if self.role == ROLE_ALL:
            return None
        if not self.db_url.startswith("postgresql"):
            return (
                f"role {self.role} needs a PostgreSQL store shared by every process "
                "(SQLite allows only role all)"
            )
        if self.receive_maximum == 0:
            return f"role {self.role} needs MQTT 5 (receive_maximum above 0)"
        return None
