"""The HTTP API and the console at fleet scale (issue 18's benchmark).

    .venv/bin/python tests/bench/bench_http.py --nodes 10000 --seconds 20
    .venv/bin/python tests/bench/bench_http.py --db postgresql --nodes 10000
    .venv/bin/python tests/bench/bench_http.py --nodes 0 --paint-nodes 1000   # needs chromium

A store seeded with N nodes (a hello and a latest sample each), served by the same app and
uvicorn server `dormouse run` uses, on loopback. `GET /api/v1/nodes` is timed from a client
one request at a time for 20 s (p50/p99; the listing is rebuilt from the store once a second
meanwhile, in a worker thread, as in the daemon), beside its peer in the same run: the same
listing through the nodes service with no HTTP (what `dormouse nodes --json` costs), as a
ratio. Then the
console's first paint: headless Chromium loads `/` and the time from navigation to the first
full fleet table (`performance.mark("fleet-rendered")`) is read from the page.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from coordinator.core.nodestate import NodeState
from coordinator.core.registry import NodeView
from coordinator.http.api import Api
from coordinator.http.app import create_app
from coordinator.http.server import HttpServer
from coordinator.services import nodes as node_service
from coordinator.services import tokens
from coordinator.settings import CoordinatorConfig, Http
from coordinator.store import nodes as node_rows
from coordinator.store.engine import create_engine, upgrade
from shared.clock import SystemClock
from tests import factories


def seed(engine: sa.Engine, count: int) -> None:
    states = [NodeState.ONLINE] * 3 + [NodeState.ASLEEP]
    now = time.time()
    views = [
        NodeView(
            name=f"n{i:05d}",
            state=states[i % len(states)],
            state_since=now - 3600,
            last_seen=now,
            hello=factories.hello(f"n{i:05d}"),
            latest={"cpu_util_pct": 12.5, "power_w": 210.0, "gpus": 1, "jobs": i % 3},
        )
        for i in range(count)
    ]
    with engine.begin() as conn:
        for start in range(0, count, 2000):
            node_rows.save_nodes(conn, views[start : start + 2000])


def store_url(kind: str, folder: Path) -> tuple[str, sa.Engine | None]:
    if kind == "sqlite":
        return f"sqlite:///{folder / 'bench.db'}", None
    base = os.environ.get("DORMOUSE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    return f"{base}?options=-csearch_path%3D{schema}", admin


def serve(engine: sa.Engine, url: str) -> str:
    """The app on a free loopback port, in its own thread and event loop."""
    settings = CoordinatorConfig(db=url, http=Http(listen="127.0.0.1:0"))
    server = HttpServer(create_app(Api(engine, settings, SystemClock())), settings.http)
    threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True).start()
    return server.url


def timed(fn: Callable[[], object], seconds: float, limit: int = 100_000) -> list[float]:
    """Back-to-back calls for `seconds`, at most `limit` of them (ms each)."""
    end, times = time.monotonic() + seconds, list[float]()
    while time.monotonic() < end and len(times) < limit:
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def api_latency(engine: sa.Engine, base: str, token: str, count: int, seconds: float) -> None:
    request = urllib.request.Request(
        f"{base}api/v1/nodes", headers={"Authorization": f"Bearer {token}"}
    )

    def over_http() -> object:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()  # the server's latency: the client's JSON parse is not

    def service_only() -> object:
        return json.dumps({"nodes": node_service.summaries(engine)}).encode()

    over_http()  # warm: connections, caches
    # long enough that the listing is rebuilt in the background several times meanwhile
    http_ms, peer_ms = timed(over_http, seconds), timed(service_only, math.inf, count)
    for name, values in (("GET /api/v1/nodes", http_ms), ("peer: service + json", peer_ms)):
        print(
            f"  {name:<22} p50 {statistics.median(values):7.1f} ms  "
            f"p99 {quantile(values, 0.99):7.1f} ms  (n={len(values)})"
        )
    ratio = quantile(http_ms, 0.99) / quantile(peer_ms, 0.99)
    print(f"  ratio p99 HTTP / service: {ratio:.2f}x; goal p99 <= 50 ms")


def fleet_mark(driver: object) -> float | None:
    script = (
        "const m = performance.getEntriesByName('fleet-rendered');"
        "return m.length ? m[0].startTime : null;"
    )
    return driver.execute_script(script)  # type: ignore[attr-defined]


def first_paint(base: str, token: str, runs: int) -> None:
    from selenium import webdriver  # noqa: PLC0415 - only this part needs a browser
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        marks, rows = [], 0
        for _ in range(runs):
            driver.get("about:blank")  # a new document each time, not a fragment change
            driver.get(f"{base}#token={token}")
            deadline, mark = time.monotonic() + 30, None
            while mark is None and time.monotonic() < deadline:
                mark = fleet_mark(driver)
                time.sleep(0.05)
            rows = driver.execute_script(
                "return document.querySelectorAll('#fleet tbody tr').length"
            )
            marks.append(math.nan if mark is None else float(mark))
        print(
            f"  first paint of the fleet ({rows} rows): median {statistics.median(marks):.0f} ms, "
            f"max {max(marks):.0f} ms over {runs} loads; goal <= 1000 ms"
        )
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description="HTTP API latency and console first paint")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--nodes", type=int, default=10_000, help="for the API latency (0: skip)")
    parser.add_argument("--requests", type=int, default=100, help="peer calls")
    parser.add_argument("--seconds", type=float, default=20.0, help="of back-to-back GETs")
    parser.add_argument("--paint-nodes", type=int, default=1000, help="for first paint (0: skip)")
    parser.add_argument("--paint-runs", type=int, default=5)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, store {args.db}")
    with tempfile.TemporaryDirectory() as folder:
        for count, part in ((args.nodes, "api"), (args.paint_nodes, "paint")):
            if count <= 0:
                continue
            (Path(folder) / part).mkdir()
            url, admin = store_url(args.db, Path(folder) / part)
            engine = create_engine(url)
            upgrade(engine)
            seed(engine, count)
            token = tokens.create(engine, "read", "bench", time.time()).token
            base = serve(engine, url)
            print(f"{count} nodes:")
            if part == "api":
                api_latency(engine, base, token, args.requests, args.seconds)
            else:
                first_paint(base, token, args.paint_runs)
            engine.dispose()
            if admin is not None:
                schema = url.rsplit("%3D", 1)[1]
                with admin.begin() as conn:
                    conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))


if __name__ == "__main__":
    main()
