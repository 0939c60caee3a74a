"""The shipped secured-broker config (configs/mosquitto/) on a real Mosquitto with a
throw-away CA: TLS only, passwords, and an ACL that keeps each node to its own topics;
and an agent that refuses unsigned or replayed commands from anyone with broker access."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import shutil
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import pytest

from coordinator.daemon.mqtt import subscriptions
from coordinator.settings import ROLE_INGEST, ROLE_LEADER, CoordinatorConfig
from shared.codec import encode
from shared.config import BrokerUrl, MqttSecurity
from shared.messages import Command, Resend
from shared.signing import sign
from tests.conftest import free_port, port_open
from tests.integration.agent_support import KEY

pytestmark = pytest.mark.mqtt
SHIPPED = Path(__file__).parents[2] / "configs" / "mosquitto"
USERS = {
    "dormouse-coordinator": "c-secret",
    "dormouse-leader-2": "l-secret",
    "dormouse-ingest-1": "i1-secret",
    "dormouse-ingest-2": "i2-secret",
    "node-a": "a-secret",
    "node-b": "b-secret",
}


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(directory: Path) -> None:
    """A CA, the broker's certificate for 127.0.0.1, and a client certificate."""
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        cwd=directory,
    )
    for name, san in (("broker", "IP:127.0.0.1,DNS:localhost"), ("client", "DNS:node-a")):
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            cwd=directory,
        )
        (directory / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
            "-out",
            f"{name}.crt",
            cwd=directory,
        )


@pytest.fixture
def broker(tmp_path):
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    make_pki(tmp_path)
    passwd = tmp_path / "dormouse.passwd"
    for i, (user, password) in enumerate(USERS.items()):
        flags = ["-b", "-c"] if i == 0 else ["-b"]
        subprocess.run(["mosquitto_passwd", *flags, str(passwd), user, password], check=True)
    port = free_port()
    conf = (SHIPPED / "dormouse.conf").read_text()
    for old, new in {
        "/etc/mosquitto/dormouse.passwd": str(passwd),
        "/etc/mosquitto/dormouse.acl": str(SHIPPED / "dormouse.acl"),
        "/etc/mosquitto/ca_certificates/dormouse-ca.crt": str(tmp_path / "ca.crt"),
        "/etc/mosquitto/certs/broker.crt": str(tmp_path / "broker.crt"),
        "/etc/mosquitto/certs/broker.key": str(tmp_path / "broker.key"),
        "listener 8883": f"listener {port} 127.0.0.1",
    }.items():
        assert old in conf
        conf = conf.replace(old, new)
    conf += f"user {getpass.getuser()}\nlog_dest file {tmp_path}/mosquitto.log\n"
    (tmp_path / "mosquitto.conf").write_text(conf)
    process = subprocess.Popen([binary, "-c", str(tmp_path / "mosquitto.conf")])
    deadline = time.monotonic() + 10
    while not port_open("127.0.0.1", port, 0.2):
        assert process.poll() is None, "mosquitto exited"
        assert time.monotonic() < deadline, "mosquitto did not start in 10 s"
        time.sleep(0.05)
    yield port, tmp_path
    process.terminate()
    process.wait(timeout=10)


def client(port: int, pki: Path, user: str, **kw: object) -> aiomqtt.Client:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    options: dict[str, object] = {"identifier": f"{user}-{uuid.uuid4().hex[:6]}"} | kw
    return aiomqtt.Client(
        "127.0.0.1",
        port,
        username=user,
        password=USERS[user],
        tls_context=context,
        **options,  # type: ignore[arg-type]
    )


async def collect(messages: list[tuple[str, bytes]], sub: aiomqtt.Client) -> None:
    async for message in sub.messages:
        messages.append((message.topic.value, bytes(message.payload)))


async def until(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.05)


async def test_a_node_cannot_publish_as_another(broker):
    port, pki = broker
    seen: list[tuple[str, bytes]] = []
    async with client(port, pki, "dormouse-coordinator") as coordinator:
        await coordinator.subscribe("dormouse/v1/nodes/+/telemetry", qos=1)
        reader = asyncio.create_task(collect(seen, coordinator))
        async with client(port, pki, "node-a") as node_a:
            await node_a.publish("dormouse/v1/nodes/node-b/telemetry", b"forged", qos=1)
            await node_a.publish("dormouse/v1/nodes/node-a/telemetry", b"own", qos=1)
        await until(lambda: ("dormouse/v1/nodes/node-a/telemetry", b"own") in seen)
        reader.cancel()
    assert ("dormouse/v1/nodes/node-b/telemetry", b"forged") not in seen


@pytest.mark.parametrize("victim", ["node-b", "dormouse-coordinator"])
async def test_a_node_cannot_take_another_clients_id(broker, victim):
    """node-a asks for the victim's client id: the broker gives it node-a's (its user name),
    so the victim keeps its connection and its session."""
    port, pki = broker
    seen: list[tuple[str, bytes]] = []
    async with client(port, pki, "dormouse-coordinator", identifier="dormouse-coordinator") as co:
        await co.subscribe("dormouse/v1/nodes/+/telemetry", qos=1)
        reader = asyncio.create_task(collect(seen, co))
        async with client(port, pki, "node-b", identifier="node-b") as node_b:
            async with client(port, pki, "node-a", identifier=victim):
                await asyncio.sleep(1.0)  # a takeover would have closed the victim by now
                await node_b.publish("dormouse/v1/nodes/node-b/telemetry", b"still", qos=1)
            await until(lambda: ("dormouse/v1/nodes/node-b/telemetry", b"still") in seen)
        reader.cancel()


async def test_split_roles_each_with_the_shipped_users_connect_at_once_and_read_their_share(
    broker,
):
    """Leader, standby and two ingest workers, each its own shipped user and subscribed to
    what its role subscribes to (`daemon.mqtt.subscriptions`): all stay connected together;
    the workers share the telemetry (each message to one of them) and see every hello; the
    leaders see hellos and no telemetry; a worker's command reaches no node, a leader's does."""
    port, pki = broker
    roles = {
        "dormouse-coordinator": ROLE_LEADER,
        "dormouse-leader-2": ROLE_LEADER,
        "dormouse-ingest-1": ROLE_INGEST,
        "dormouse-ingest-2": ROLE_INGEST,
    }
    seen: dict[str, list[tuple[str, bytes]]] = {user: [] for user in [*roles, "node-a"]}
    async with contextlib.AsyncExitStack() as stack:
        clients = {}
        for user, role in roles.items():
            clients[user] = await stack.enter_async_context(client(port, pki, user))
            for topic in subscriptions(CoordinatorConfig(role=role)):
                await clients[user].subscribe(topic, qos=1)
        node_a = await stack.enter_async_context(client(port, pki, "node-a"))
        await node_a.subscribe("dormouse/v1/nodes/node-a/cmd", qos=1)
        readers = [asyncio.create_task(collect(seen[u], c)) for u, c in clients.items()]
        readers.append(asyncio.create_task(collect(seen["node-a"], node_a)))
        await node_a.publish("dormouse/v1/nodes/node-a/hello", b"hello", qos=1)
        for i in range(20):
            await node_a.publish("dormouse/v1/nodes/node-a/telemetry", b"t%d" % i, qos=1)
        await clients["dormouse-ingest-1"].publish("dormouse/v1/nodes/node-a/cmd", b"w", qos=1)
        await clients["dormouse-leader-2"].publish("dormouse/v1/nodes/node-a/cmd", b"l", qos=1)
        ingest = ("dormouse-ingest-1", "dormouse-ingest-2")
        await until(lambda: sum(len(seen[u]) for u in ingest) >= 22 and bool(seen["node-a"]))
        await asyncio.sleep(0.5)
        for reader in readers:
            reader.cancel()
    telemetry = [[m for t, m in seen[u] if t.endswith("/telemetry")] for u in ingest]
    assert sorted(telemetry[0] + telemetry[1]) == sorted(b"t%d" % i for i in range(20))
    assert all(telemetry)  # both workers took a share: neither was thrown off
    for user in roles:
        assert ("dormouse/v1/nodes/node-a/hello", b"hello") in seen[user], user
    assert not [t for u in ("dormouse-coordinator", "dormouse-leader-2") for t, _ in seen[u]
                if t.endswith("/telemetry")]  # fmt: skip
    assert seen["node-a"] == [("dormouse/v1/nodes/node-a/cmd", b"l")]


async def test_a_node_cannot_read_another_nodes_commands(broker):
    port, pki = broker
    stolen: list[tuple[str, bytes]] = []
    own: list[tuple[str, bytes]] = []
    async with client(port, pki, "node-a") as node_a, client(port, pki, "node-b") as node_b:
        await node_a.subscribe("dormouse/v1/nodes/node-b/cmd", qos=1)
        await node_a.subscribe("dormouse/v1/nodes/+/cmd", qos=1)
        await node_b.subscribe("dormouse/v1/nodes/node-b/cmd", qos=1)
        readers = [
            asyncio.create_task(collect(stolen, node_a)),
            asyncio.create_task(collect(own, node_b)),
        ]
        async with client(port, pki, "dormouse-coordinator") as coordinator:
            await coordinator.publish("dormouse/v1/nodes/node-b/cmd", b"for b", qos=1)
        await until(lambda: bool(own))
        await asyncio.sleep(0.5)
        for reader in readers:
            reader.cancel()
    assert own == [("dormouse/v1/nodes/node-b/cmd", b"for b")]
    assert stolen == []


async def test_plain_tcp_and_wrong_passwords_are_refused(broker):
    port, pki = broker
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(
            "127.0.0.1", port, username="node-a", password="a-secret", timeout=3
        ):
            pass
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(
            "127.0.0.1", port, username="node-a", password="wrong", tls_context=context, timeout=3
        ):
            pass
    with pytest.raises(aiomqtt.MqttError):  # a broker certificate from a CA we do not trust
        async with aiomqtt.Client(
            "127.0.0.1",
            port,
            username="node-a",
            password="a-secret",
            tls_context=ssl.create_default_context(),
            timeout=3,
        ):
            pass


async def test_our_connection_settings_use_the_ca_password_file_and_client_certificate(broker):
    port, pki = broker
    (pki / "a.pass").write_text("a-secret\n")
    security = MqttSecurity(
        ca_file=pki / "ca.crt",
        cert_file=pki / "client.crt",
        key_file=pki / "client.key",
        password_file=pki / "a.pass",
    )
    url = BrokerUrl(host="127.0.0.1", port=port, tls=True, username="node-a")
    async with aiomqtt.Client(**url.client_kwargs(security), identifier="node-a") as connected:
        await connected.publish("dormouse/v1/nodes/node-a/status", b"x", qos=1)


def start_agent(port: int, pki: Path, log_name: str) -> subprocess.Popen[bytes]:
    """A real agent for node-b over TLS, its spool (and accepted commands) under `pki`."""
    (pki / "key").write_text(KEY)
    (pki / "key").chmod(0o600)
    (pki / "b.pass").write_text("b-secret\n")
    log = (pki / log_name).open("ab")
    env = {
        **os.environ,
        "DORMOUSE_COMMAND_KEY_FILE": str(pki / "key"),
        "DORMOUSE_MQTT_CA_FILE": str(pki / "ca.crt"),
        "DORMOUSE_MQTT_PASSWORD_FILE": str(pki / "b.pass"),
        "DORMOUSE_JOBS_DIR": str(pki / "jobs"),
        "DORMOUSE_LOG_LEVEL": "debug",
    }
    env.pop("DORMOUSE_CONFIG", None)
    return subprocess.Popen(
        [
            sys.executable, "-m", "agent", "run", "--node", "node-b",
            "--broker", f"mqtts://node-b@127.0.0.1:{port}",
            "--interval", "0.2s", "--publish-interval", "0.2s",
            "--spool-dir", str(pki / "spool"),
        ],
        env=env,
        stdout=log,
        stderr=log,
    )  # fmt: skip


async def publishing(port: int, pki: Path) -> None:
    """Until node-b's agent is connected and publishing telemetry."""
    seen: list[tuple[str, bytes]] = []
    async with client(port, pki, "dormouse-coordinator") as watcher:
        await watcher.subscribe("dormouse/v1/nodes/node-b/telemetry", qos=1)
        reader = asyncio.create_task(collect(seen, watcher))
        await until(lambda: bool(seen), 30)
        reader.cancel()


def resend_command() -> Command:
    now = time.time()
    return Command(
        id=uuid.uuid4().hex,
        node="node-b",
        issued_at=now,
        expires_at=now + 60,
        body=Resend(from_seq=0, to_seq=0),
    )


def signed_resend() -> bytes:
    return encode(sign(resend_command(), KEY.encode()))


async def test_a_captured_command_replayed_after_an_agent_restart_is_refused(broker):
    port, pki = broker
    topic = "dormouse/v1/nodes/node-b/cmd"
    agent = start_agent(port, pki, "first.log")
    try:
        await publishing(port, pki)
        captured = signed_resend()
        async with client(port, pki, "dormouse-coordinator") as coordinator:
            await coordinator.publish(topic, captured, qos=1)
        await until(lambda: "resent seq 0..0" in (pki / "first.log").read_text(), 15)
    finally:
        agent.terminate()
        agent.wait(timeout=30)
    agent = start_agent(port, pki, "second.log")  # the same spool directory
    try:
        await publishing(port, pki)
        async with client(port, pki, "dormouse-coordinator") as attacker:
            await attacker.publish(topic, captured, qos=1)  # seconds old, inside the skew

        def logged() -> str:
            return (pki / "second.log").read_text(errors="replace")

        await until(lambda: "command refused (replayed)" in logged(), 15)
        assert "resent seq 0..0" not in logged()
    finally:
        agent.terminate()
        agent.wait(timeout=30)


async def test_the_agent_refuses_unsigned_and_replayed_commands_over_tls(broker):
    port, pki = broker
    agent = start_agent(port, pki, "agent.log")
    try:
        await publishing(port, pki)  # the agent is connected over TLS, publishing
        async with client(port, pki, "dormouse-coordinator") as attacker:
            command = resend_command()
            topic = "dormouse/v1/nodes/node-b/cmd"
            await attacker.publish(topic, encode(command), qos=1)  # unsigned
            signed = encode(sign(command, KEY.encode()))
            await attacker.publish(topic, signed, qos=1)
            await attacker.publish(topic, signed, qos=1)  # the same again: a replay

        def logged() -> str:
            return (pki / "agent.log").read_text(errors="replace")

        await until(lambda: "command refused (replayed)" in logged(), 15)
        text = logged()
        assert "command refused (signature)" in text  # the unsigned one
        assert text.count("resent seq 0..0") == 1  # the signed one ran once
    finally:
        agent.terminate()
        agent.wait(timeout=30)
