"""Config: defaults < file < environment < flags; unknown keys and bad values name the key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.settings import AgentConfig
from coordinator.settings import CoordinatorConfig
from shared.config import (
    BrokerUrl,
    config_path,
    describe,
    env_name,
    load_config,
    parse_bool,
    parse_broker_url,
    parse_positive_seconds,
    section,
    setting,
)
from shared.errors import ConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class Power:
    idle_after: float = setting(300.0, parse_positive_seconds, "idle time before sleep")
    enabled: bool = setting(True, parse_bool, "sleep idle nodes")


@dataclass(frozen=True, slots=True, kw_only=True)
class Schema:
    broker: BrokerUrl = setting(parse_broker_url("mqtt://127.0.0.1"), parse_broker_url, "b")
    power: Power = section(Power, "power policy")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_embedded_defaults():
    config = load_config(Schema, env={})
    assert config.broker == BrokerUrl("127.0.0.1", 1883)
    assert config.power.idle_after == 300


def test_precedence_file_then_env_then_flags(tmp_path):
    path = write(tmp_path, 'broker = "mqtt://file:1"\n[power]\nidle_after = "10m"\n')
    assert load_config(Schema, path=path, env={}).power.idle_after == 600
    env = {"DORMOUSE_BROKER": "mqtt://env:2", "DORMOUSE_POWER_IDLE_AFTER": "1h"}
    config = load_config(Schema, path=path, env=env)
    assert (config.broker.host, config.power.idle_after) == ("env", 3600)
    config = load_config(Schema, path=path, env=env, overrides={"broker": "mqtt://flag:3"})
    assert config.broker.host == "flag"


def test_unknown_key_names_it_and_the_known_ones(tmp_path):
    path = write(tmp_path, "[power]\nidle_afterr = 5\n")
    with pytest.raises(
        ConfigError,
        match=r"unknown key 'power.idle_afterr' \(known: "
        r"power.enabled, power.idle_after\)",
    ):
        load_config(Schema, path=path, env={})


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ('[power]\nidle_after = "soon"\n', {}, r"power.idle_after \(from .*c.toml\): not a dur"),
        ("[power]\nidle_after = 0\n", {}, "power.idle_after .* more than 0"),
        ("[power]\nenabled = 3\n", {}, "power.enabled .* expected a string"),
        ("", {"DORMOUSE_POWER_ENABLED": "maybe"}, r"environment DORMOUSE_POWER_ENABLED\)"),
        ('broker = "tcp://x"\n', {}, "broker .* expected mqtt://"),
        ('broker = "mqtt://x:99999"\n', {}, "bad port"),
        ("power = 3\n", {}, "'power' must be a table"),
        ("broker = \n", {}, "not valid TOML"),
    ],
)
def test_bad_values_name_the_key_and_source(tmp_path, text, env, message):
    with pytest.raises(ConfigError, match=message):
        load_config(Schema, path=write(tmp_path, text), env=env)


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Schema, path=tmp_path / "nope.toml", env={})


def test_broker_urls():
    assert parse_broker_url("mqtts://u:p%40ss@broker.lan") == BrokerUrl(
        "broker.lan", 8883, tls=True, username="u", password="p@ss"
    )
    assert str(parse_broker_url("mqtt://u:secret@h:1")) == "mqtt://u:***@h:1"


def test_env_names_and_describe():
    assert env_name("power.idle_after") == "DORMOUSE_POWER_IDLE_AFTER"
    keys = [key for key, _, _ in describe(load_config(Schema, env={}))]
    assert keys == ["broker", "power.idle_after", "power.enabled"]


def test_config_path_lookup(tmp_path):
    default = tmp_path / "default.toml"
    assert config_path(None, default, env={}) is None
    default.write_text("")
    assert config_path(None, default, env={}) == default
    assert config_path(None, default, env={"DORMOUSE_CONFIG": "/x.toml"}) == Path("/x.toml")
    assert config_path(Path("/flag.toml"), default, env={"DORMOUSE_CONFIG": "/x"}) == Path(
        "/flag.toml"
    )


def test_coordinator_schema():
    config = load_config(CoordinatorConfig, env={"DORMOUSE_DATA_DIR": "/srv/dm"})
    assert config.db_url == "sqlite:////srv/dm/dormouse.db"
    env = {"DORMOUSE_DB": "postgresql+psycopg://postgres@127.0.0.1/test"}
    assert load_config(CoordinatorConfig, env=env).db_url.startswith("postgresql+psycopg://")
    with pytest.raises(ConfigError, match=r"db .* not a database URL"):
        load_config(CoordinatorConfig, env={"DORMOUSE_DB": "::nonsense"})


def test_agent_schema():
    assert load_config(AgentConfig, env={"DORMOUSE_NODE": "gpu-07"}).node == "gpu-07"
    with pytest.raises(ConfigError, match=r"node .* bad node name"):
        load_config(AgentConfig, env={"DORMOUSE_NODE": "a/b"})


def test_broker_client_kwargs():
    plain = parse_broker_url("mqtt://u:p@h:1").client_kwargs()
    assert plain == {
        "hostname": "h",
        "port": 1,
        "username": "u",
        "password": "p",
        "tls_context": None,
    }
    assert parse_broker_url("mqtts://h").client_kwargs()["tls_context"] is not None


def test_key_files(tmp_path):
    from shared.config import read_key_file  # noqa: PLC0415

    assert read_key_file(tmp_path / "none") is None
    (tmp_path / "short").write_text("abc")
    (tmp_path / "short").chmod(0o600)
    with pytest.raises(ConfigError, match="at least 16"):
        read_key_file(tmp_path / "short")
    (tmp_path / "dir").mkdir()
    with pytest.raises(ConfigError, match="cannot read"):
        read_key_file(tmp_path / "dir")
    (tmp_path / "good").write_text("k" * 32 + "\n")
    (tmp_path / "good").chmod(0o600)
    assert read_key_file(tmp_path / "good") == b"k" * 32
    (tmp_path / "good").chmod(0o400)
    assert read_key_file(tmp_path / "good") == b"k" * 32


@pytest.mark.parametrize("mode", [0o666, 0o644, 0o640, 0o602])
def test_a_key_open_to_other_users_is_refused_like_ssh_does(tmp_path, mode):
    from shared.config import read_key_file  # noqa: PLC0415

    key = tmp_path / "command.key"
    key.write_text("k" * 32)
    key.chmod(mode)
    with pytest.raises(
        ConfigError, match=f"open to other users \\(mode {mode:04o}\\); run `chmod 600"
    ):
        read_key_file(key)
