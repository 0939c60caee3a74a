"""The console at fleet scale: time to first meaningful render and what an open tab costs
the coordinator.

    .venv/bin/python tests/bench/bench_console.py                  # 1,000 8-GPU nodes, SQLite
    .venv/bin/python tests/bench/bench_console.py --db postgresql --seconds 120
    .venv/bin/python tests/bench/bench_console.py --part build --hours 2 --days 7

A store holding 1,000 nodes' history (`--hours` of rolled-up minutes after `--days` of hour
rows, `--gpus` per node in every row; a node's sleep, jobs) is
served by the app and uvicorn server `dormouse run` uses, in a process of its own; another
process stands for the daemon, rewriting every node's row (last seen, latest sample) each
second as ingest does, so the live listing changes all the time. Measured:

* the timeline's build in-process (`builds`), cold and as a poll, against the fleet's
  power through the fleet history for the same window, as a ratio;
* first render: headless Chromium loads `/` (default window 6 h) and the time from
  navigation to `performance.mark("timeline-rendered")` (fleet chart, power, demand and the
  lanes drawn) is read from the page; median and max over `--loads` loads;
* CPU per open tab: the server process's utime + stime (/proc) over `--seconds` with no
  client, then with one tab left open (live stream, the timeline polled each minute), then,
  the peer in the same run, with a client asking what the previous console asked per tab
  (each second the whole fleet, jobs and power events; each minute the energy report for
  1 d and 7 d). Each as % of one core, less the idle run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from coordinator.core.nodestate import NodeState
from coordinator.core.registry import NodeView
from coordinator.core.series import FleetQuery
from coordinator.http.api import Api
from coordinator.http.app import create_app
from coordinator.http.server import HttpServer
from coordinator.services import history, tokens
from coordinator.services import timeline as timeline_service
from coordinator.settings import CoordinatorConfig, Http
from coordinator.store import nodes as node_rows
from coordinator.store.engine import create_engine, upgrade
from shared.clock import SystemClock
from shared.metrics import BY_NAME
from tests import factories, fleet_timeline
from tests.bench.bench_http import store_url

HOUR = 3600.0


def views(names: list[str], now: float, start: float) -> list[NodeView]:
    return [
        NodeView(
            name=n,
            state=NodeState.ONLINE,
            state_since=start,
            last_seen=now,
            hello=factories.hello(n),
            latest={"cpu_util_pct": 12.5 + i % 7, "power_w": 210.0 + i % 13, "gpus": 8,
                    "jobs": i % 3, "mem_used_bytes": 2**36, "mem_total_bytes": 2**39},
        )
        for i, n in enumerate(names)
    ]  # fmt: skip


def serve(url: str, port_file: Path) -> None:
    """The server process: the app as `dormouse run` serves it."""
    engine = create_engine(url)
    settings = CoordinatorConfig(db=url, http=Http(listen="127.0.0.1:0"))
    server = HttpServer(create_app(Api(engine, settings, SystemClock())), settings.http)
    port_file.write_text(server.url)
    asyncio.run(server.serve())


def ingest(url: str, nodes: int) -> None:
    """The daemon's stand-in: every node's row rewritten each second."""
    engine = create_engine(url)
    names = [f"n{i:04d}" for i in range(nodes)]
    while True:
        now = time.time()
        with engine.begin() as conn:
            node_rows.save_nodes(conn, views(names, now, now - 6 * HOUR))
        time.sleep(max(0.0, 1.0 - (time.time() - now)))


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def browser():
    from selenium import webdriver  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1400,1000"):  # fmt: skip
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


def render_ms(driver, base: str, token: str) -> float:
    driver.get("about:blank")
    driver.get(f"{base}#token={token}")
    script = (
        "const m = performance.getEntriesByName('timeline-rendered');"
        "return m.length ? m[0].startTime : null;"
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        mark = driver.execute_script(script)
        if mark is not None:
            return float(mark)
        time.sleep(0.02)
    return float("nan")


def old_console(base: str, token: str, stop: threading.Event) -> None:
    """What the previous console asked of the coordinator per tab: each second the whole
    fleet, the newest 200 jobs and 30 power events (its stream sent them all whenever any
    node's row changed, which is every second), and each minute the energy report for 1 d
    and 7 d."""

    def get(path: str) -> None:
        request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=120) as response:
            response.read()

    reported = -float("inf")
    while not stop.is_set():
        started = time.monotonic()
        for path in ("api/v1/nodes", "api/v1/jobs?limit=200", "api/v1/power/events?limit=30"):
            get(path)
        if started - reported >= 60:
            reported = started
            get("api/v1/report?since=1d&limit=1")
            get("api/v1/report?since=7d&limit=1")
        stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))


def measured(pid: int, seconds: float) -> float:
    """The server's CPU over `seconds`, as % of one core."""
    before, start = cpu_s(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_s(pid) - before) / (time.monotonic() - start) * 100


def builds(url: str, now: float) -> None:
    """The timeline's answer built in-process for 6 h (5 min steps, the minute tier) and
    7 d (2 h steps, the hour tier): cold, then a poll a minute later (only its newest
    steps re-read); the peer, in the same run, is the fleet's power through the fleet
    history (`GET /api/v1/history?by=fleet&metric=power_w&agg=sum`), what the previous
    console's fleet chart read for the same window."""
    engine = create_engine(url)
    settings = CoordinatorConfig(db=url)
    for label, since, step in (("6 h", 6 * HOUR, 300.0), ("7 d", 7 * 24 * HOUR, 7200.0)):
        kept = timeline_service.MeasuredPower()
        started = time.perf_counter()
        timeline_service.fleet_timeline(engine, settings, now - since, step, now, kept)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        timeline_service.fleet_timeline(engine, settings, now - since, step, now + 60, kept)
        poll = time.perf_counter() - started
        query = FleetQuery(BY_NAME["power_w"], now - since, now, step, "sum")
        started = time.perf_counter()
        history.grouped(engine, query, "fleet", None, {}, settings.retention, now)
        peer = time.perf_counter() - started
        print(f"timeline {label}: cold {cold * 1000:.0f} ms, a poll {poll * 1000:.0f} ms; "
              f"peer (fleet power history) {peer * 1000:.0f} ms; ratio cold/peer "
              f"{cold / peer:.2f}x, poll/peer {poll / peer:.2f}x")  # fmt: skip
    engine.dispose()


def drop(admin: sa.Engine | None, url: str) -> None:
    if admin is not None:
        schema = url.rsplit("%3D", 1)[1]
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))


def main() -> None:  # noqa: PLR0915 - one run, in order
    parser = argparse.ArgumentParser(description="console first render and CPU per tab")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=120.0, help="each CPU measurement")
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--gpus", type=int, default=8, help="per node (0: CPU-only rows)")
    parser.add_argument("--hours", type=float, default=6.0, help="of samples (minute rows)")
    parser.add_argument("--days", type=int, default=7, help="of hour rows before them")
    parser.add_argument("--part", choices=["all", "build"], default="all",
                        help="build: only the timeline's build times, in-process")  # fmt: skip
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, store {args.db}, "
          f"{args.nodes} nodes x {args.gpus} GPUs, {args.hours:g} h of minutes after "
          f"{args.days} d of hours")  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        url, admin = store_url(args.db, Path(folder))
        engine = create_engine(url)
        upgrade(engine)
        names = [f"n{i:04d}" for i in range(args.nodes)]
        started = time.monotonic()
        now = time.time()
        fleet_timeline.write(engine, names, now, args.hours * HOUR, gpus=args.gpus,
                             days_before=args.days)  # fmt: skip
        token = tokens.create(engine, "read", "bench", time.time()).token
        engine.dispose()
        print(f"store written in {time.monotonic() - started:.0f} s")
        builds(url, time.time())
        if args.part == "build":
            drop(admin, url)
            return
        port_file = Path(folder) / "url"
        me = [sys.executable, __file__]
        server = subprocess.Popen([*me, "--serve", url, str(port_file)])
        writer = subprocess.Popen([*me, "--ingest", url, str(args.nodes)])
        try:
            while not port_file.exists() or not port_file.read_text():
                time.sleep(0.1)
            base = port_file.read_text()
            time.sleep(3)
            idle = measured(server.pid, args.seconds)
            driver = browser()
            try:
                loads = [render_ms(driver, base, token) for _ in range(args.loads)]
                print(f"first render (fleet over time and {args.nodes} lanes, 6 h): median "
                      f"{statistics.median(loads):.0f} ms, max {max(loads):.0f} ms over "
                      f"{len(loads)} loads; goal <= 1500 ms")  # fmt: skip
                time.sleep(5)  # the first poll's answers built
                one_tab = measured(server.pid, args.seconds)
            finally:
                driver.quit()
            stop = threading.Event()
            peer = threading.Thread(target=old_console, args=(base, token, stop), daemon=True)
            peer.start()
            old = measured(server.pid, args.seconds)
            stop.set()
            tab, old_tab = one_tab - idle, old - idle
            print(json.dumps({"idle_pct": round(idle, 2), "one_tab_pct": round(one_tab, 2),
                              "old_console_pct": round(old, 2)}))  # fmt: skip
            print(f"CPU per open tab: {tab:.2f} % of a core (goal <= 1 %); the previous "
                  f"console's requests: {old_tab:.2f} %; ratio new/old "
                  f"{tab / old_tab if old_tab > 0 else float('nan'):.2f}x")  # fmt: skip
        finally:
            for process in (server, writer):
                process.terminate()
                process.wait(10)
        drop(admin, url)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(sys.argv[2], Path(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "--ingest":
        ingest(sys.argv[2], int(sys.argv[3]))
    else:
        main()
