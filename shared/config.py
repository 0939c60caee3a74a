"""Configuration: embedded defaults < TOML file < `DORMOUSE_*` environment < command-line flags.

A schema is a frozen dataclass whose fields are `setting(...)`s (or `section(...)`s holding
another schema). Each setting knows how to parse its value, so TOML and environment strings
go through the same check, and every error names the key and where the value came from.
The environment variable of key `power.idle_after` is `DORMOUSE_POWER_IDLE_AFTER`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

from shared.errors import ConfigError, DormouseError
from shared.signing import parse_key
from shared.topics import validate_node
from shared.units import format_duration, parse_duration, parse_size

if TYPE_CHECKING:
    import ssl

T = TypeVar("T")
Parser = Callable[[Any], Any]
ENV_PREFIX = "DORMOUSE_"


def setting(default: Any, parse: Parser, doc: str) -> Any:
    return dataclasses.field(default=default, metadata={"parse": parse, "doc": doc})


def section(schema: type[Any], doc: str) -> Any:
    return dataclasses.field(default_factory=schema, metadata={"section": schema, "doc": doc})


def env_name(key: str) -> str:
    return ENV_PREFIX + key.replace(".", "_").upper()


def load_config(
    schema: type[T],
    *,
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> T:
    """Build `schema` from its defaults, then the TOML at `path`, the environment, `overrides`
    (dotted keys, e.g. from CLI flags; None values are ignored)."""
    file_values = _read_toml(path) if path is not None else {}
    env = os.environ if env is None else env
    return _build(schema, "", file_values, str(path), env, overrides or {})


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _build(  # noqa: PLR0917 - recursive helper, positional on purpose
    schema: type[T],
    prefix: str,
    table: Mapping[str, Any],
    origin: str,
    env: Mapping[str, str],
    overrides: Mapping[str, Any],
) -> T:
    fields = {f.name: f for f in dataclasses.fields(schema)}  # type: ignore[arg-type]
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ConfigError(
            f"{origin}: unknown key {prefix + unknown[0]!r}"
            f" (known: {', '.join(prefix + k for k in sorted(fields))})"
        )
    values: dict[str, Any] = {}
    for name, f in fields.items():
        key = prefix + name
        if "section" in f.metadata:
            sub = table.get(name, {})
            if not isinstance(sub, dict):
                raise ConfigError(f"{origin}: {key!r} must be a table ([{key}])")
            values[name] = _build(f.metadata["section"], key + ".", sub, origin, env, overrides)
            continue
        raw, source = _pick(key, table.get(name), origin, env, overrides)
        if raw is not None:
            values[name] = _parse(f.metadata["parse"], raw, key, source)
    return schema(**values)


def _pick(
    key: str, from_file: Any, origin: str, env: Mapping[str, str], overrides: Mapping[str, Any]
) -> tuple[Any, str]:
    if overrides.get(key) is not None:
        return overrides[key], "command line"
    if env_name(key) in env:
        return env[env_name(key)], f"environment {env_name(key)}"
    return from_file, origin


def _parse(parse: Parser, raw: Any, key: str, source: str) -> Any:
    try:
        return parse(raw)
    except (ValueError, TypeError, DormouseError) as exc:
        raise ConfigError(f"{key} (from {source}): {exc}") from None


def describe(config: Any) -> Iterator[tuple[str, Any, str]]:
    """(key, value, doc) for every setting, sections flattened."""
    for f, key, value in _leaves(config, ""):
        yield key, value, f.metadata.get("doc", "")


def shown(config: Any) -> Iterator[tuple[str, str, Any, str]]:
    """(key, TOML text, JSON value, doc) for every setting: what `config show` prints and
    the commented config `install` writes, spelt as an operator would type it."""
    for f, key, value in _leaves(config, ""):
        duration = f.metadata["parse"] is parse_positive_seconds
        yield key, toml_value(value, duration=duration), json_value(value), f.metadata["doc"]


def _leaves(config: Any, prefix: str) -> Iterator[tuple[dataclasses.Field[Any], str, Any]]:
    """(field, dotted key, value) of every setting, sections flattened."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if "section" in f.metadata:
            yield from _leaves(value, prefix + f.name + ".")
        else:
            yield f, prefix + f.name, value


def toml_value(value: Any, *, duration: bool = False) -> str:
    """A value as TOML: durations as "7d", an unset path as "" (Path("") reads back as ".")."""
    if duration and isinstance(value, int | float) and not isinstance(value, bool):
        return json.dumps(format_duration(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple | list | frozenset | set):
        return "[" + ", ".join(toml_value(v) for v in _ordered(value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(_text(value))


def json_value(value: Any) -> Any:
    """A value for `--json`: sets as sorted lists, paths and URLs as strings."""
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, tuple | list | frozenset | set):
        return [json_value(v) for v in _ordered(value)]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return _text(value)


def _ordered(values: Any) -> list[Any]:
    """Lists keep their order (it can matter); sets are sorted so output is stable."""
    return sorted(values, key=str) if isinstance(values, frozenset | set) else list(values)


def _text(value: Any) -> str:
    return "" if isinstance(value, Path) and value == Path() else str(value)


# Parsers: each takes a TOML value or an environment string and returns the typed value.


def parse_str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = parse_str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def parse_positive_seconds(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"must be more than 0, got {value!r}")
    return seconds


def parse_bytes(value: Any) -> int:
    return parse_size(value)


def parse_path(value: Any) -> Path:
    return Path(parse_str(value)).expanduser()


def parse_node(value: Any) -> str:
    return validate_node(parse_str(value))


def list_items(value: Any, what: str) -> list[Any]:
    """A TOML array, or "a,b" from the environment or a flag."""
    items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise TypeError(f"expected a list of {what}, got {type(value).__name__}")
    return list(items)


def table_items(value: Any, what: str) -> dict[Any, Any]:
    """A TOML table, or "k=v,k2=v2" from the environment or a flag."""
    if isinstance(value, str):
        pairs = [p.partition("=") for p in value.split(",") if p.strip()]
        if any(not sep for _, sep, _ in pairs):
            raise ValueError(f"expected key=value pairs separated by commas, got {value!r}")
        value = {k.strip(): v.strip() for k, _, v in pairs}
    if not isinstance(value, dict):
        raise TypeError(f"expected a table of {what}, got {type(value).__name__}")
    return dict(value)


def parse_ports(value: Any) -> tuple[int, ...]:
    return tuple(sorted({parse_port(item) for item in list_items(value, "ports")}))


def parse_port(value: Any) -> int:
    port = int(value) if isinstance(value, str) and value.strip().isdigit() else value
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"not a port: {value!r}")
    return port


def parse_labels(value: Any) -> dict[str, str]:
    """{rack = "r1"}, or "rack=r1,gpu=h100"."""
    value = table_items(value, "labels")
    for key, label in value.items():
        validate_node(key)  # label keys follow node-name rules
        if not isinstance(label, str) or len(label) > 256:
            raise ValueError(f"label {key!r}: expected a string of at most 256 characters")
    return value


def parse_choice(*choices: str) -> Parser:
    def parse(value: Any) -> str:
        text = parse_str(value)
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {text!r}")
        return text

    return parse


def parse_choices(*choices: str) -> Parser:
    def parse(value: Any) -> tuple[str, ...]:
        items = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise TypeError(f"expected a list, got {type(value).__name__}")
        return tuple(parse_choice(*choices)(item) for item in items if item)

    return parse


def parse_log_level(value: Any) -> str:
    level = parse_str(value).upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError(f"expected debug, info, warning or error, got {value!r}")
    return level


NO_FILE = Path()


@dataclass(frozen=True, slots=True, kw_only=True)
class MqttSecurity:
    """The `[mqtt]` table of agent and coordinator configs: files for an mqtts:// broker."""

    ca_file: Path = setting(NO_FILE, parse_path, "CA certificate(s) to trust (empty: the system's)")
    cert_file: Path = setting(NO_FILE, parse_path, "client certificate (empty: none)")
    key_file: Path = setting(NO_FILE, parse_path, "client certificate's key (empty: in cert_file)")
    password_file: Path = setting(NO_FILE, parse_path, "file holding the MQTT password")

    def tls_context(self) -> ssl.SSLContext:
        """Only for mqtts:// brokers: `ssl` (libssl and its tables, ~6 MB) is imported here,
        not at start, so a plain-MQTT agent never loads it (`agent.main`)."""
        import ssl  # noqa: PLC0415 - TLS only: see the docstring

        context = ssl.create_default_context(
            cafile=str(self.ca_file) if self.ca_file != NO_FILE else None
        )
        if self.cert_file != NO_FILE:
            key = str(self.key_file) if self.key_file != NO_FILE else None
            context.load_cert_chain(str(self.cert_file), key)
        return context


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    """`mqtt://[user[:password]@]host[:port]` or `mqtts://...` (TLS, port 8883 by default)."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    def client_kwargs(self, security: MqttSecurity | None = None) -> dict[str, Any]:
        """Where and as whom to connect, for aiomqtt.Client. TLS trusts `ca_file` (else the
        system's CAs) and presents `cert_file` when given; `password_file` is read at each
        connect (so a rotated password needs no restart) and wins over one in the URL."""
        security = security or MqttSecurity()
        password = self.password
        if security.password_file != NO_FILE:
            password = security.password_file.read_text().strip()
        return {
            "hostname": self.host,
            "port": self.port,
            "username": self.username,
            "password": password,
            "tls_context": security.tls_context() if self.tls else None,
        }

    def __str__(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def parse_broker_url(value: Any) -> BrokerUrl:
    text = parse_str(value).strip()
    parts = urlsplit(text)
    if parts.scheme not in {"mqtt", "mqtts"}:
        raise ValueError(f"expected mqtt://host:port or mqtts://host:port, got {text!r}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bad port in {text!r}") from None
    if not parts.hostname or (parts.path not in {"", "/"}) or parts.query:
        raise ValueError(f"expected mqtt://host:port, got {text!r}")
    tls = parts.scheme == "mqtts"
    return BrokerUrl(
        host=parts.hostname,
        port=port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def read_key_file(path: Path) -> bytes | None:
    """The key in `path`; None when there is no such file (commands are then refused, or
    not sent); ConfigError when it exists but cannot be read, is too short, or is open to
    other users: like ssh with a private key, a key others may read or write is refused."""
    try:
        with path.open() as handle:
            mode = os.fstat(handle.fileno()).st_mode & 0o777
            text = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"command_key_file: cannot read {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise ConfigError(
            f"command_key_file: {path} is open to other users (mode {mode:04o}); "
            f"run `chmod 600 {path}`"
        )
    return parse_key(text)


def default_data_dir(component: str) -> Path:
    """/var/lib/<component> for root (systemd's StateDirectory), else the XDG data home."""
    if os.geteuid() == 0:
        return Path("/var/lib") / component
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / component


def config_path(
    flag: Path | None, default: Path, env: Mapping[str, str] | None = None
) -> Path | None:
    """The file to read: the flag, else DORMOUSE_CONFIG, else `default` if it exists."""
    env = os.environ if env is None else env
    if flag is not None:
        return flag
    if env.get("DORMOUSE_CONFIG"):
        return Path(env["DORMOUSE_CONFIG"])
    return default if default.exists() else None
