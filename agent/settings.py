"""The agent's configuration schema (see shared.config for how it is loaded)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shared.config import (
    BrokerUrl,
    MqttSecurity,
    default_data_dir,
    list_items,
    parse_bool,
    parse_broker_url,
    parse_bytes,
    parse_choice,
    parse_choices,
    parse_labels,
    parse_log_level,
    parse_node,
    parse_path,
    parse_port,
    parse_ports,
    parse_positive_seconds,
    parse_str,
    section,
    setting,
)
from shared.edge.host import default_node_name
from shared.messages import MAC_RE, SLEEP_METHODS, WAKE_METHODS

DEFAULT_CONFIG_PATH = Path("/etc/dormouse/agent.toml")


def parse_macs(value: object) -> tuple[str, ...]:
    """["52:54:00:12:34:56"], or "52:54:00:12:34:56,..."."""
    macs = [str(item).lower().replace("-", ":") for item in list_items(value, "MAC addresses")]
    for mac in macs:
        if not MAC_RE.fullmatch(mac):
            raise ValueError(f"not a MAC address: {mac!r} (e.g. 52:54:00:12:34:56)")
    return tuple(macs)


def parse_count0(value: object) -> int:
    number = int(value) if isinstance(value, str) and value.strip().isdigit() else value
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 1 << 20:
        raise ValueError(f"expected a whole number >= 0, got {value!r}")
    return number


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConfig:
    node: str = setting(default_node_name(), parse_node, "node name, unique in the fleet")
    broker: BrokerUrl = setting(
        parse_broker_url("mqtt://127.0.0.1:1883"), parse_broker_url, "MQTT broker URL"
    )
    interval: float = setting(1.0, parse_positive_seconds, "time between samples")
    publish_interval: float = setting(5.0, parse_positive_seconds, "time between batches")
    spool_dir: Path = setting(
        default_data_dir("dormouse-agent"), parse_path, "on-disk spool of telemetry batches"
    )
    spool_max_bytes: int = setting(64 * 2**20, parse_bytes, "spool size cap (oldest go first)")
    spool_keep: float = setting(
        3600.0, parse_positive_seconds, "how long sent samples stay for resends"
    )
    service_ports: tuple[int, ...] = setting(
        (), parse_ports, "TCP ports whose established connections are counted"
    )
    labels: dict[str, str] = field(
        default_factory=dict,
        metadata={"parse": parse_labels, "doc": 'labels jobs can ask for, e.g. {rack = "r1"}'},
    )
    sleep_method: str = setting(
        "systemctl-suspend", parse_choice(*sorted(SLEEP_METHODS)), "how this host sleeps"
    )
    wake_methods: tuple[str, ...] = setting(
        ("wol",), parse_choices(*sorted(WAKE_METHODS)), "how this host can be woken"
    )
    sleep_command: str = setting(
        "", parse_str, 'with sleep_method "command": the command line, run without a shell'
    )
    rtcwake_after: float = setting(
        8 * 3600.0,
        parse_positive_seconds,
        'with sleep_method "rtcwake": the RTC wakes the host after',
    )
    macs: tuple[str, ...] = setting(
        (), parse_macs, "MACs to wake this host by (empty: every interface's)"
    )
    wol_listen_port: int = setting(
        9, parse_port, 'with sleep_method "dry-run": UDP port where a magic packet ends it'
    )
    wol_listen_addr: str = setting(
        "127.255.255.255",
        parse_str,
        'with sleep_method "dry-run": address to listen on (loopback broadcast: this host only)',
    )
    dry_run_max: float = setting(
        3600.0,
        parse_positive_seconds,
        'with sleep_method "dry-run": wake by itself after this long',
    )
    simulated_load: bool = setting(
        False,
        parse_bool,
        "demo/test fleets on one host: CPU from this agent's jobs, no host GPUs or RAPL",
    )
    offer_cpus: int = setting(0, parse_count0, "CPUs offered to jobs (0: all the host has)")
    offer_mem: int = setting(0, parse_bytes, "memory offered to jobs (0: all the host has)")
    jobs_dir: Path = setting(
        default_data_dir("dormouse-agent") / "jobs",
        parse_path,
        "one directory per job: output, result",
    )
    job_user: str = setting("", parse_str, "run jobs as this user (empty: the agent's own)")
    job_log_max_bytes: int = setting(
        64 * 2**20, parse_bytes, "cap on each job's stdout and stderr files"
    )
    job_keep: float = setting(
        7 * 86400.0, parse_positive_seconds, "keep a reported job's directory this long"
    )
    job_kill_grace: float = setting(
        10.0, parse_positive_seconds, "SIGTERM, then SIGKILL after, at the runtime limit"
    )
    command_key_file: Path = setting(
        Path("/etc/dormouse/command.key"), parse_path, "HMAC key for verifying commands"
    )
    log_level: str = setting("INFO", parse_log_level, "debug, info, warning or error")
    mqtt: MqttSecurity = section(MqttSecurity, "TLS and password files for an mqtts:// broker")
