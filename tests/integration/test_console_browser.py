"""The web console in headless Chromium against a running `dormouse run` (real Mosquitto,
two dry-run agents): it loads without console errors, shows the fleet, follows a sleep and
a submitted job live without a reload. Screenshots go to artifacts/console/."""

from __future__ import annotations

import json
import re
import time
import urllib.request

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import free_port
from tests.integration.browser_support import artifacts, browser, console_errors
from tests.integration.coordinator_support import CoordinatorProcess
from tests.integration.test_power import dry_run_agent, free_udp_port

pytestmark = pytest.mark.mqtt
__all__ = ["browser"]  # the fixture, imported for pytest


def call(url: str, token: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        headers={"Authorization": f"Bearer {token}"},
        method="POST" if data else "GET",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def read(driver, script: str, *args):
    """Read the page in one call: the tables are replaced at each live update, so an element
    found by one WebDriver call may be gone (stale) by the next."""
    return driver.execute_script(script, *args)


def row(node: str) -> str:
    return f'#fleet tr[data-node="{node}"]'


def row_state(driver, node: str) -> str | None:
    script = "const r = document.querySelector(arguments[0]); return r ? r.dataset.state : null;"
    return read(driver, script, row(node))


def badge(driver, node: str) -> list[str] | None:
    """The state badge's text and class."""
    script = (
        "const b = document.querySelector(arguments[0]); return b && [b.textContent, b.className];"
    )
    return read(driver, script, f"{row(node)} .state")


@pytest.fixture
def served(db_url, mosquitto, tmp_path):
    port, wol = free_port(), free_udp_port()
    coordinator = CoordinatorProcess(
        db_url=db_url,
        broker=mosquitto.url,
        workdir=tmp_path,
        extra_env={
            "DORMOUSE_HTTP_LISTEN": f"127.0.0.1:{port}",
            "DORMOUSE_JOBS_SCHEDULE_INTERVAL": "0.3s",
            "DORMOUSE_POWER_MIN_AWAKE": "1",
            "DORMOUSE_POWER_WOL_BROADCAST": "127.255.255.255",
            "DORMOUSE_POWER_WOL_PORT": str(wol),
        },
    )
    coordinator.start()
    stem = f"w-{time.monotonic_ns() % 10**8}"
    agents = [
        dry_run_agent(mosquitto, tmp_path, f"{stem}-{i}", f"02:00:00:00:01:0{i}", wol)
        for i in (1, 2)
    ]
    tokens = {}
    for scope in ("read", "write"):
        made = coordinator.run_cli("token", "create", "--scope", scope)
        assert made.returncode == 0, made.stderr
        tokens[scope] = made.stdout.strip()
    try:
        yield f"http://127.0.0.1:{port}", [a.node for a in agents], tokens
    finally:
        for agent in agents:
            agent.kill()
        coordinator.kill()


def test_console_live_fleet_sleep_and_job(served, browser):
    base, nodes, tokens = served
    shots = artifacts("console")
    browser.get(f"{base}/#token={tokens['read']}")
    WebDriverWait(browser, 30).until(
        lambda d: all(row_state(d, n) == "online" for n in nodes), "both nodes online"
    )
    assert "token=" not in browser.current_url  # taken out of the address bar
    # least connections reads the daemon's state on the daemon's loop, from the HTTP thread
    picked = call(f"{base}/api/v1/pick", tokens["read"], {"strategy": "least-connections"})
    assert picked["node"] in nodes, picked
    summary = browser.find_element(By.ID, "summary").text
    assert "0 W" not in summary  # these hosts measure no power: unknown, not zero
    assert "power \u2013 (no node measures it)" in summary, summary
    read(
        browser,
        'document.querySelector(`#fleet tr[data-node="${arguments[0]}"]`).click()',
        nodes[0],
    )
    WebDriverWait(browser, 10).until(
        lambda d: (
            d.find_element(By.ID, "node-title").text == nodes[0]
            and d.find_elements(By.CSS_SELECTOR, "#node-chart text")
        ),
        "the node's panel and history chart",
    )
    facts = browser.find_element(By.ID, "node-facts").text
    assert "power\n\u2013 (no sensor)" in facts, facts  # no sensor: unknown, never 0 W
    browser.save_screenshot(str(shots / "1-fleet.png"))
    asleep = nodes[1]
    answer = call(
        f"{base}/api/v1/nodes/{asleep}/sleep", tokens["write"], {"force": True, "wait_s": 15}
    )
    assert answer["outcome"].startswith("done"), answer
    asked = time.monotonic()
    WebDriverWait(browser, 5).until(
        lambda d: row_state(d, asleep) in {"sleeping", "asleep"}, "the slept node's row changed"
    )
    changed_after = time.monotonic() - asked
    text, classes = badge(browser, asleep)
    assert text in {"sleeping", "asleep"}
    assert classes.split()[-1] == f"state-{text}"
    browser.save_screenshot(str(shots / "2-asleep.png"))
    body = {"argv": ["sleep", "5"], "cpus": 1, "runtime_s": 60, "deadline_s": 600, "name": "web"}
    job_id = call(f"{base}/api/v1/jobs", tokens["write"], body)["id"]
    WebDriverWait(browser, 5).until(
        lambda d: d.find_elements(By.ID, f"job-{job_id}"), "the submitted job in the queue"
    )
    row = read(browser, "return document.getElementById(arguments[0]).textContent", f"job-{job_id}")
    assert "web" in row
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row), row  # ISO-8601, 24 h
    assert "1 min" in row  # its runtime estimate, 60 s
    browser.set_window_size(1280, 1000)
    fits = (
        "const s = document.getElementById('queue-panel');"
        "const met = document.querySelector('#queue thead th:last-child').getBoundingClientRect();"
        "return [s.scrollWidth <= s.clientWidth, met.right <= window.innerWidth, met.width > 0];"
    )
    assert read(browser, fits) == [True, True, True]  # deadline and met, no scrolling
    browser.save_screenshot(str(shots / "4-jobs-1280.png"))
    browser.save_screenshot(str(shots / "3-job.png"))
    assert browser.execute_script("return performance.navigation.type") == 0  # never reloaded
    assert console_errors(browser) == []
    print(f"row changed {changed_after:.2f}s after the sleep was answered")
