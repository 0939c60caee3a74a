"""Prometheus /metrics from a running coordinator with one agent (real Mosquitto)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.coordinator_support import serving_metrics
from tests.integration.test_jobs import eventually, start_agents, submit

pytestmark = pytest.mark.mqtt


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def exposition(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def promtool_check(text: str) -> None:
    """Prometheus's own linter (Debian's prometheus package); CI installs it."""
    promtool = shutil.which("promtool")
    if promtool is None:
        assert os.environ.get("CI") != "true", "promtool missing: .ci/run installs prometheus"
        pytest.skip("promtool not installed (apt install prometheus)")
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=text.encode(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, (checked.stdout + checked.stderr).decode()


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = exposition(port)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_show_nodes_ingest_queue_and_power(db_url, mosquitto, tmp_path):
    port = free_port()
    coordinator = serving_metrics(
        db_url, mosquitto.url, tmp_path, port, DORMOUSE_COST_ACCOUNTS="ops=250"
    )
    coordinator.start()
    (agent,) = start_agents(mosquitto, tmp_path, [1])
    node = agent.node
    try:

        def online() -> bool:
            return (
                scrape(port).get(("dormouse_node_state", (("node", node), ("state", "online"))))
                == 1
            )

        await eventually(online, 30, "the node online in /metrics")
        figures = scrape(port)
        assert figures[("dormouse_node_state", (("node", node), ("state", "asleep")))] == 0
        assert figures[("dormouse_messages_received_total", (("kind", "telemetry"),))] > 0
        await eventually(
            lambda: scrape(port)[("dormouse_samples_stored_total", ())] > 0, 10, "samples stored"
        )
        assert ("dormouse_node_cpu_utilisation_percent", (("node", node),)) in figures
        submit(
            coordinator, "--cpus", "1", "--", sys.executable, "-c", "import time; time.sleep(30)"
        )
        submit(coordinator, "--cpus", "1", "--", sys.executable, "-c", "pass")

        def queued() -> bool:
            seen = scrape(port)
            return (
                seen[("dormouse_jobs", (("state", "running"),))] == 1
                and seen[("dormouse_jobs", (("state", "pending"),))] == 1
            )

        await eventually(queued, 30, "one job running and one pending in /metrics")
        summary = scrape(port)
        assert summary[("dormouse_ingest_lag_seconds_count", ())] > 0
        assert summary[("dormouse_ingest_lag_seconds", (("quantile", "0.99"),))] >= 0
        assert summary[("dormouse_account_budget", (("account", "ops"),))] == 250
        assert summary[("dormouse_account_spent", (("account", "ops"),))] == 0
        assert "# TYPE dormouse_wasted_gpus gauge" in exposition(port)
        promtool_check(exposition(port))
    finally:
        agent.kill()
        coordinator.kill()
