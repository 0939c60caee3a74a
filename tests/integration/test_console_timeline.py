"""The console's fleet over time in headless Chromium, over a store holding an hour of a
fleet's history (SQLite and PostgreSQL): the asleep band of a node that slept five minutes,
the gap in that node's own chart, estimated power marked, a node without a sensor never
shown as 0 W, keyboard navigation, dark mode, no horizontal overflow from 1024 px, no
console errors, no external URL; and a thousand nodes' lanes rendered and scrolled (time to
first render printed). Screenshots go to artifacts/console-timeline/."""

from __future__ import annotations

import json
import re
import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from coordinator.store.engine import create_engine, upgrade
from tests import fleet_timeline
from tests.integration.browser_support import (
    artifacts,
    browser,
    console_errors,
    own_urls_only,
    serve_store,
)

__all__ = ["browser"]  # the fixture, imported for pytest
HOUR = 3600.0


def drawn(driver, chart: str, series: str) -> list[float | None] | None:
    """The values a chart drew for one series (kept on its path), or None before it drew."""
    script = (
        "const p = document.querySelector(`#${arguments[0]} path[data-series='${arguments[1]}']`);"
        "return p ? p.dataset.values : null;"
    )
    found = driver.execute_script(script, chart, series)
    return None if found is None else json.loads(found)


def loaded(driver, base: str, token: str) -> None:
    driver.get(f"{base}#token={token}")
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script(
            "return performance.getEntriesByName('timeline-rendered').length"
        ),
        "the fleet over time drawn",
    )


@pytest.fixture
def store(db_url):
    engine = create_engine(db_url)
    upgrade(engine)
    fleet = fleet_timeline.write(engine, ["web-a", "web-b", "web-c"], time.time(), HOUR)
    engine.dispose()
    return db_url, fleet


def test_the_fleet_chart_shows_the_sleep_and_the_node_chart_its_gap(store, browser):
    url, fleet = store
    base, token = serve_store(url)
    shots = artifacts("console-timeline")
    browser.set_window_size(1280, 1400)
    browser.get(f"{base}#token={token}")
    Select(browser.find_element(By.ID, "window")).select_by_value("1h")
    WebDriverWait(browser, 30).until(
        lambda d: (drawn(d, "states-chart", "asleep") or []).count(0.0) < 60, "the 1 h window"
    )
    asleep = drawn(browser, "states-chart", "asleep")
    assert sorted(v for v in asleep if v) == [0.5, 1.0, 1.0, 1.0, 1.0]  # 4.5 min asleep
    estimated = drawn(browser, "power-chart", "estimated")
    assert max(v or 0 for v in estimated) > 0  # the sensorless node's share, drawn dashed
    dashed = browser.execute_script(
        "return document.querySelector(\"#power-chart path[data-series='estimated']\")"
        ".getAttribute('stroke-dasharray')"
    )
    assert dashed
    browser.save_screenshot(str(shots / "1-fleet-over-time.png"))
    lanes = browser.find_element(By.ID, "lanes")
    lanes.send_keys(Keys.ARROW_DOWN, Keys.ARROW_DOWN, Keys.ENTER)  # the second lane: web-b
    WebDriverWait(browser, 10).until(
        lambda d: (
            d.find_element(By.ID, "node-title").text == fleet.sleeper
            and drawn(d, "node-chart", "power_w")
        ),
        "the sleeper's panel from the keyboard",
    )
    values = drawn(browser, "node-chart", "power_w")
    path = browser.execute_script(
        "return document.querySelector(\"#node-chart path[data-series='power_w']\")"
        ".getAttribute('d')"
    )
    assert path.count("M") == 2, path  # two runs: the line breaks where it slept
    holes = [i for i, v in enumerate(values) if v is None]
    assert 4 <= len([i for i in holes if 0 < i < len(values) - 2]) <= 6, values
    kinds = browser.find_element(By.ID, "node-events").text
    assert {"asleep", "resumed"} <= set(kinds.split())
    browser.save_screenshot(str(shots / "2-node.png"))
    read_out = browser.find_element(By.ID, "states-chart")
    read_out.send_keys(Keys.ARROW_LEFT)
    assert "asleep" in browser.find_element(By.ID, "states-readout").text
    browser.execute_script("document.querySelector('#fleet tr[data-node=\"web-c\"]').click()")
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "node-title").text == "web-c")
    WebDriverWait(browser, 10).until(
        lambda d: "no sensor" in d.find_element(By.ID, "node-facts").text
    )
    page = browser.find_element(By.TAG_NAME, "body").text
    assert not re.search(r"(?<![\d.])0(\.0+)? W", page)  # unknown power is never 0 W
    browser.set_window_size(1024, 900)
    overflow = "return document.documentElement.scrollWidth - window.innerWidth"
    assert browser.execute_script(overflow) <= 0
    browser.save_screenshot(str(shots / "3-1024.png"))
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
    )
    background = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
    assert sum(int(c) for c in background[4:-1].split(",")[:3]) < 150, background  # dark
    browser.save_screenshot(str(shots / "4-dark.png"))
    assert console_errors(browser) == []
    assert own_urls_only(browser, base) == []


def test_a_thousand_nodes_lanes_render_and_scroll(tmp_path, browser):
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    engine = create_engine(url)
    upgrade(engine)
    names = [f"n{i:04d}" for i in range(1000)]
    fleet_timeline.write(engine, names, time.time(), HOUR)
    engine.dispose()
    base, token = serve_store(url)
    browser.set_window_size(1400, 1200)
    loaded(browser, base, token)
    render_ms = browser.execute_script(
        "return performance.getEntriesByName('timeline-rendered')[0].startTime"
    )
    lanes = browser.find_element(By.ID, "lanes")
    assert browser.find_element(By.ID, "lanes-count").text == "1000 nodes"
    first = lanes.get_attribute("data-drawn")
    assert first.startswith("0-")
    assert int(first.split("-")[1]) < 40  # only the lanes in view are drawn
    browser.execute_script("arguments[0].scrollTop = arguments[0].scrollHeight", lanes)
    WebDriverWait(browser, 5).until(
        lambda d: lanes.get_attribute("data-drawn").endswith("-999"), "the last lane drawn"
    )
    artifacts("console-timeline")
    browser.save_screenshot(str(artifacts("console-timeline") / "5-thousand-nodes.png"))
    assert console_errors(browser) == []
    print(
        f"1000 nodes: the fleet over time and its lanes first rendered {render_ms:.0f} ms "
        f"after navigation"
    )
