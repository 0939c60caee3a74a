"""Agent footprint against collectd, side by side in one run (issues 3 and 16).

    .venv/bin/python tests/bench/bench_agent.py [--seconds 240] [--agent-python PYTHON]

Needs a local Mosquitto (127.0.0.1:1883), openssl and Debian's collectd-core (cpu, memory
and mqtt plugins). collectd, an agent on plain MQTT and an agent on mqtts:// (a second,
TLS-only Mosquitto this script starts) sample every second for `--seconds`; subscribers
count what each publishes, so a silent misconfiguration cannot pass for a cheap run.
`--agent-python` runs the agents from another environment (a plain `pip install dormouse`
venv: the dev venv carries test-only packages, PySocks among them, which paho loads).
Prints CPU seconds, peak RSS and their ratios, the cost of one sampling pass (this host,
and 8 fake GPUs with every health field), and the bytes per sample on the wire.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiomqtt

from agent.samplers.gpu import GpuSampler
from agent.sampling import take_sample
from agent.service import host_samplers
from agent.settings import AgentConfig
from shared.codec import encode
from shared.config import BrokerUrl, load_config, parse_broker_url
from shared.messages import TelemetryBatch
from tests.conftest import free_port, port_open
from tests.integration.test_secure_broker import make_pki
from tests.unit.samplers_support import FakeGpu, FakeNvml

CLK_TCK = os.sysconf("SC_CLK_TCK")
COLLECTD_CONF = """\
Hostname "bench"
FQDNLookup false
Interval 1
BaseDir "{dir}"
PIDFile "{dir}/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin cpu
LoadPlugin memory
LoadPlugin mqtt
<Plugin mqtt>
  <Publish "bench">
    Host "{host}"
    Port {port}
    ClientId "collectd-bench"
    Prefix "collectd-bench"
    QoS 1
  </Publish>
</Plugin>
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


WARMUP_S = 10.0


TLS_CONF = """\
listener {port} 127.0.0.1
allow_anonymous true
cafile {dir}/ca.crt
certfile {dir}/broker.crt
keyfile {dir}/broker.key
user {user}
persistence false
"""
SIDES = ("agent", "agent_tls", "collectd")


async def count_messages(
    brokers: tuple[BrokerUrl, int, Path],
    seconds: float,
    pids: dict[str, int],
    warm_cpu_s: dict[str, float],
) -> dict[str, int]:
    """Count each side's messages; note CPU seconds at WARMUP_S (start-up excluded later)."""
    broker, tls_port, pki = brokers
    counts = dict.fromkeys(SIDES, 0)
    asyncio.get_running_loop().call_later(
        WARMUP_S, lambda: warm_cpu_s.update({n: cpu_seconds(p) for n, p in pids.items()})
    )
    tls = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    async with (
        aiomqtt.Client(broker.host, broker.port) as plain,
        aiomqtt.Client("127.0.0.1", tls_port, tls_context=tls) as secure,
    ):
        await plain.subscribe("collectd-bench/#")
        await plain.subscribe("dormouse/v1/nodes/bench/telemetry")
        await secure.subscribe("dormouse/v1/nodes/bench-tls/telemetry")

        async def count(client: aiomqtt.Client) -> None:
            async for message in client.messages:
                topic = message.topic.value
                side = "collectd" if topic.startswith("collectd") else "agent"
                counts["agent_tls" if "bench-tls" in topic else side] += 1

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await asyncio.gather(count(plain), count(secure))
    return counts


def tls_broker(work: Path) -> tuple[subprocess.Popen[bytes], int]:
    make_pki(work)
    port = free_port()
    conf = TLS_CONF.format(port=port, dir=work, user=getpass.getuser())
    (work / "tls.conf").write_text(conf)
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    process = subprocess.Popen(
        [binary, "-c", str(work / "tls.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not port_open("127.0.0.1", port, 0.2):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the TLS mosquitto did not start")
        time.sleep(0.05)
    return process, port


def start_agent(python: str, node: str, url: str, work: Path) -> subprocess.Popen[bytes]:
    argv = [python, "-m", "agent", "run", "--node", node, "--interval", "1s"]
    argv += ["--publish-interval", "5s", "--spool-dir", str(work / node), "--broker", url]
    env = {
        **os.environ,
        "DORMOUSE_COMMAND_KEY_FILE": str(work / "no-key"),
        "DORMOUSE_MQTT_CA_FILE": str(work / "ca.crt"),
        "DORMOUSE_JOBS_DIR": str(work / node / "jobs"),
    }
    return subprocess.Popen(  # cwd: not the checkout, so `-m agent` is the env's own
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=work
    )


def side_by_side(
    broker: BrokerUrl, seconds: float, work: Path, python: str
) -> dict[str, dict[str, float]]:
    (work / "collectd.conf").write_text(
        COLLECTD_CONF.format(dir=work, host=broker.host, port=broker.port)
    )
    secure, tls_port = tls_broker(work)
    processes = {
        "collectd": subprocess.Popen(
            ["/usr/sbin/collectd", "-f", "-C", str(work / "collectd.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        "agent": start_agent(python, "bench", f"mqtt://{broker.host}:{broker.port}", work),
        "agent_tls": start_agent(python, "bench-tls", f"mqtts://127.0.0.1:{tls_port}", work),
    }
    try:
        warm: dict[str, float] = {}
        pids = {name: p.pid for name, p in processes.items()}
        counts = asyncio.run(count_messages((broker, tls_port, work), seconds, pids, warm))
        results = {
            name: {
                "cpu_s": cpu_seconds(p.pid),
                "steady_cpu_s": cpu_seconds(p.pid) - warm[name],
                "peak_rss_mb": peak_rss_mb(p.pid),
                "messages": counts[name],
            }
            for name, p in processes.items()
        }
    finally:
        for process in [*processes.values(), secure]:
            process.terminate()
            process.wait(timeout=10)
    return results


def fake_gpu_pass_ms(gpus: int = 8, passes: int = 300) -> dict[str, float]:
    """One GPU sampling pass over `gpus` fake GPUs answering every field (health included)."""
    sampler = GpuSampler(FakeNvml([FakeGpu(f"GPU-{i}") for i in range(gpus)]))
    sampler.sample()
    times = []
    for _ in range(passes):
        start = time.perf_counter()
        sampler.sample()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {"mean_ms": statistics.fmean(times), "p99_ms": times[int(len(times) * 0.99)]}


def sampling_pass_ms(passes: int = 300) -> dict[str, float]:
    samplers = host_samplers(load_config(AgentConfig, env={}))
    take_sample(samplers, time.time())
    times = []
    for _ in range(passes):
        start = time.perf_counter()
        take_sample(samplers, time.time())
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {
        "mean_ms": statistics.fmean(times),
        "p50_ms": times[len(times) // 2],
        "p99_ms": times[int(len(times) * 0.99)],
    }


def wire_bytes_per_sample(batch_size: int = 5) -> dict[str, float]:
    samplers = host_samplers(load_config(AgentConfig, env={}))
    samples = []
    for _ in range(batch_size):
        time.sleep(0.2)
        samples.append(take_sample(samplers, time.time()))
    batch = TelemetryBatch(node="bench", seq_first=123_456, samples=tuple(samples))
    as_json = json.dumps(
        [{"node": "bench", "seq": 123_456 + i, **s.to_wire()} for i, s in enumerate(samples)],
        separators=(",", ":"),
    )
    wire = len(encode(batch)) / batch_size
    plain = len(as_json.encode()) / batch_size
    return {"wire_bytes": wire, "json_bytes": plain, "ratio": wire / plain}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=240.0)
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--agent-python", default=sys.executable, help="the agents' python")
    args = parser.parse_args()
    if shutil.which("collectd") is None and not Path("/usr/sbin/collectd").exists():
        sys.exit("collectd is not installed: apt-get install collectd-core")
    broker = parse_broker_url(args.broker)
    with tempfile.TemporaryDirectory() as work:
        runs = side_by_side(broker, args.seconds, Path(work), args.agent_python)
    collectd = runs["collectd"]
    print(f"machine: {os.cpu_count()} cores; {args.seconds:g} s, each sampling every 1 s")
    print(f"agents: {args.agent_python}")
    print(f"{'':10s} {'cpu_s':>8s} {'steady_cpu_s':>13s} {'peak_rss_mb':>12s} {'messages':>9s}")
    for name, run in runs.items():
        print(
            f"{name:10s} {run['cpu_s']:8.2f} {run['steady_cpu_s']:13.2f} "
            f"{run['peak_rss_mb']:12.1f} {run['messages']:9d}"
        )
    print(f"(steady: from {WARMUP_S:g} s to the end, start-up excluded)")
    for name in ("agent", "agent_tls"):
        run = runs[name]
        print(
            f"ratio {name}/collectd: cpu {run['cpu_s'] / max(collectd['cpu_s'], 0.01):.2f}x, "
            f"steady cpu {run['steady_cpu_s'] / max(collectd['steady_cpu_s'], 0.01):.2f}x, "
            f"rss {run['peak_rss_mb'] / collectd['peak_rss_mb']:.2f}x"
        )
    passes = sampling_pass_ms()
    print(
        "sampling pass: mean {mean_ms:.3f} ms, p50 {p50_ms:.3f} ms, p99 {p99_ms:.3f} ms".format(
            **passes
        )
    )
    gpus = fake_gpu_pass_ms()
    print("8 fake GPUs, every field: mean {mean_ms:.3f} ms, p99 {p99_ms:.3f} ms".format(**gpus))
    wire = wire_bytes_per_sample()
    print(
        "bytes per sample (batch of 5): wire {wire_bytes:.0f}, JSON {json_bytes:.0f}, "
        "ratio {ratio:.2f}".format(**wire)
    )
    print(json.dumps({"runs": runs, "sampling_pass": passes, "fake_gpus": gpus, "wire": wire}))


if __name__ == "__main__":
    main()
