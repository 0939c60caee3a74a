"""Agent footprint against collectd, side by side in one run (issue 3's benchmark).

    .venv/bin/python tests/bench/bench_agent.py [--seconds 60] [--broker mqtt://127.0.0.1:1883]

Needs a local Mosquitto and Debian's collectd-core (cpu, memory and mqtt plugins). Both
sample every second for `--seconds` and publish to the same broker; a subscriber counts
what each one publishes, so a silent misconfiguration cannot pass for a cheap run. Prints
CPU seconds, peak RSS and their ratios, then the cost of one sampling pass and the bytes
per sample on the wire against the same samples as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiomqtt

from agent.sampling import take_sample
from agent.service import host_samplers
from agent.settings import AgentConfig
from shared.codec import encode
from shared.config import BrokerUrl, load_config, parse_broker_url
from shared.messages import TelemetryBatch

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


async def count_messages(
    broker: BrokerUrl, seconds: float, pids: dict[str, int], warm_cpu_s: dict[str, float]
) -> dict[str, int]:
    """Count each side's messages; note CPU seconds at WARMUP_S (start-up excluded later)."""
    counts = {"collectd": 0, "agent": 0}
    asyncio.get_running_loop().call_later(
        WARMUP_S, lambda: warm_cpu_s.update({n: cpu_seconds(p) for n, p in pids.items()})
    )
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.subscribe("collectd-bench/#")
        await client.subscribe("dormouse/v1/nodes/bench/telemetry")
        try:
            async with asyncio.timeout(seconds):
                async for message in client.messages:
                    counts[
                        "agent" if message.topic.value.startswith("dormouse") else "collectd"
                    ] += 1
        except TimeoutError:
            pass
    return counts


def side_by_side(broker: BrokerUrl, seconds: float, work: Path) -> dict[str, dict[str, float]]:
    (work / "collectd.conf").write_text(
        COLLECTD_CONF.format(dir=work, host=broker.host, port=broker.port)
    )
    collectd = subprocess.Popen(
        ["/usr/sbin/collectd", "-f", "-C", str(work / "collectd.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent",
            "run",
            "--node",
            "bench",
            "--interval",
            "1s",
            "--publish-interval",
            "5s",
            "--spool-dir",
            str(work / "spool"),
            "--broker",
            f"mqtt://{broker.host}:{broker.port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "DORMOUSE_COMMAND_KEY_FILE": str(work / "no-key")},
    )
    try:
        processes = {"agent": agent, "collectd": collectd}
        warm: dict[str, float] = {}
        pids = {name: p.pid for name, p in processes.items()}
        counts = asyncio.run(count_messages(broker, seconds, pids, warm))
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
        for process in (agent, collectd):
            process.terminate()
            process.wait(timeout=10)
    return results


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
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    args = parser.parse_args()
    if shutil.which("collectd") is None and not Path("/usr/sbin/collectd").exists():
        sys.exit("collectd is not installed: apt-get install collectd-core")
    broker = parse_broker_url(args.broker)
    with tempfile.TemporaryDirectory() as work:
        runs = side_by_side(broker, args.seconds, Path(work))
    agent, collectd = runs["agent"], runs["collectd"]
    print(f"machine: {os.cpu_count()} cores; {args.seconds:g} s, both sampling every 1 s")
    print(f"{'':10s} {'cpu_s':>8s} {'steady_cpu_s':>13s} {'peak_rss_mb':>12s} {'messages':>9s}")
    for name, run in runs.items():
        print(
            f"{name:10s} {run['cpu_s']:8.2f} {run['steady_cpu_s']:13.2f} "
            f"{run['peak_rss_mb']:12.1f} {run['messages']:9d}"
        )
    print(f"(steady: from {WARMUP_S:g} s to the end, start-up excluded)")
    print(
        f"ratio agent/collectd: cpu {agent['cpu_s'] / max(collectd['cpu_s'], 0.01):.2f}x, "
        f"steady cpu {agent['steady_cpu_s'] / max(collectd['steady_cpu_s'], 0.01):.2f}x, "
        f"rss {agent['peak_rss_mb'] / collectd['peak_rss_mb']:.2f}x"
    )
    passes = sampling_pass_ms()
    print(
        "sampling pass: mean {mean_ms:.3f} ms, p50 {p50_ms:.3f} ms, p99 {p99_ms:.3f} ms".format(
            **passes
        )
    )
    wire = wire_bytes_per_sample()
    print(
        "bytes per sample (batch of 5): wire {wire_bytes:.0f}, JSON {json_bytes:.0f}, "
        "ratio {ratio:.2f}".format(**wire)
    )
    print(json.dumps({"runs": runs, "sampling_pass": passes, "wire": wire}))


if __name__ == "__main__":
    main()
