"""Headless Chromium from Debian's packages (chromium, chromium-driver) through Selenium,
with the browser's console log kept; no driver or browser is downloaded at run time."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from coordinator.http.api import Api
from coordinator.http.app import create_app
from coordinator.http.server import HttpServer
from coordinator.services import tokens
from coordinator.settings import CoordinatorConfig, Http
from coordinator.store.engine import create_engine
from shared.clock import SystemClock

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def artifacts(name: str) -> Path:
    """Where a test leaves its screenshots ($DORMOUSE_ARTIFACTS, else ./artifacts)."""
    folder = Path(os.environ.get("DORMOUSE_ARTIFACTS", "artifacts")) / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        assert os.environ.get("CI") != "true", ".ci/run installs chromium and chromium-driver"
        pytest.skip("no chromium/chromedriver (apt install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: webdriver.Chrome) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def serve_store(url: str) -> tuple[str, str]:
    """The API and console over the store at `url`, served as `dormouse run` serves them (its
    app and uvicorn server) on a free loopback port in a daemon thread: (base URL, a read
    token)."""
    engine = create_engine(url)
    settings = CoordinatorConfig(db=url, http=Http(listen="127.0.0.1:0"))
    server = HttpServer(create_app(Api(engine, settings, SystemClock())), settings.http)
    threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True).start()
    return server.url, tokens.create(engine, "read", "console", time.time()).token


def own_urls_only(driver: webdriver.Chrome, base: str) -> list[str]:
    """Every resource the page fetched that is not from `base` (none, as the page is built)."""
    names = driver.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name).concat([location.href])"
    )
    return [n for n in names if not n.startswith(base.rstrip("/"))]
