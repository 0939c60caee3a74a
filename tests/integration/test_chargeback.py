"""Cost control over a real store (SQLite and PostgreSQL): chargeback through the CLI and the
HTTP API against figures worked out by hand, waste flagged on the leader, budgets that hold
an account's new jobs, and budget events said once.

The fleet (as tests/unit/test_chargeback.py, now through the store): one 8-GPU node that
appeared an hour into a four-hour window, hardware 8 an hour (its type's), fixed costs 2 an
hour; the price 0.10 per kWh until two hours in, 0.30 after. "vision" holds 4 GPUs at full
use for an hour across the price change; "nlp" 4 GPUs at 3 % for the last two hours.
"""

from __future__ import annotations

import dataclasses
import json
import time
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient
from typer.testing import CliRunner

from coordinator.cli import report as report_cli
from coordinator.core.jobstate import JobRecord, JobState
from coordinator.core.nodestate import NodeState
from coordinator.core.registry import NodeView, Registry
from coordinator.core.tick import ResumeLatencies
from coordinator.daemon.costs import CostWatch
from coordinator.daemon.dispatch import Dispatcher
from coordinator.http.api import Api
from coordinator.http.app import create_app
from coordinator.main import app
from coordinator.services import jobs as jobs_service
from coordinator.services import tokens
from coordinator.settings import CoordinatorConfig
from coordinator.store import jobs as job_rows
from coordinator.store import nodes as node_rows
from coordinator.store import power as power_rows
from coordinator.store.engine import create_engine, upgrade
from coordinator.store.models import budget_events
from shared.config import load_config
from shared.messages import GpuInfo
from tests import factories

HOUR = 3600.0
T0 = 1_000_000 * HOUR  # 16:00 UTC: the four hours stay inside one day
END = T0 + 4 * HOUR
GPUS = tuple(
    GpuInfo(index=i, uuid=f"GPU-{i}", name="NVIDIA A100", mem_total_bytes=80 * 2**30)
    for i in range(8)
)


def config_text(db_url: str, tmp_path, extra: str = "") -> str:
    tariff = tmp_path / "tariff.csv"
    tariff.write_text(
        "time,price\n"
        f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(T0))},0.10\n"
        f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(T0 + 2 * HOUR))},0.30\n"
    )
    return f"""
db = "{db_url}"
data_dir = "{tmp_path}"
command_key_file = "{tmp_path / "no.key"}"
[cost]
tariff = "{tariff}"
fixed_per_node_hour = 2.0
hardware_price = 999999
{extra}
[cost.types.a100]
match = {{gpu = "a100"}}
hardware_price = 70080
hardware_life = "365d"
"""


@pytest.fixture
def fleet(db_url, tmp_path):
    path = tmp_path / "coordinator.toml"
    path.write_text(config_text(db_url, tmp_path))
    engine = create_engine(db_url)
    upgrade(engine)
    hello = dataclasses.replace(factories.hello("g1"), cpus=64, gpus=GPUS, labels={"gpu": "a100"})
    node = NodeView("g1", NodeState.ONLINE, T0 + HOUR, last_seen=T0 + HOUR, hello=hello)
    with engine.begin() as conn:
        node_rows.save_nodes(conn, [node])
        node_rows.save_nodes(conn, [dataclasses.replace(node, last_seen=END)])  # kept: first
        for job in (
            ended("a", "vision", (1.5, 2.5), 1.0, 100.0),
            ended("b", "nlp", (2, 4), 0.5, 3.0),
        ):
            job_rows.insert(conn, job, job.submitted_at)
    yield engine, path
    engine.dispose()


def ended(job_id: str, account: str, hours: tuple[float, float], kwh: float, util: float):
    start, end = (T0 + h * HOUR for h in hours)
    return JobRecord(
        id=job_id, argv=("train",), submitted_at=start, cpus=8, gpus=4, state=JobState.SUCCEEDED,
        node="g1", gpu_indices=(0, 1, 2, 3), started_at=start, finished_at=end, exit_code=0,
        energy_j=kwh * 3.6e6, account=account, user=f"{account}-user", gpu_util_pct=util,
    )  # fmt: skip


def by_account(rows: list[dict]) -> dict[str, dict]:
    return {r["account"]: r for r in rows}


def test_chargeback_by_hand_through_the_cli_and_the_http_api(fleet, monkeypatch):
    engine, path = fleet
    monkeypatch.setattr(report_cli, "time", SimpleNamespace(time=lambda: END))
    result = CliRunner().invoke(
        app, ["report", "--by", "account", "--since", "4h", "--config", str(path), "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = by_account(json.loads(result.output))
    vision, nlp, idle = rows["vision"], rows["nlp"], rows["(idle)"]
    assert vision["cost"] == pytest.approx(
        {"energy": 0.20, "hardware": 4.0, "fixed": 1.0, "idle": 0.0, "total": 5.20}
    )
    assert (vision["gpu_h_allocated"], vision["gpu_h_used"], vision["efficiency"]) == (4, 4, 1)
    assert nlp["cost"] == pytest.approx(
        {"energy": 0.15, "hardware": 8.0, "fixed": 2.0, "idle": 0.0, "total": 10.15}
    )
    assert (nlp["gpu_h_used"], nlp["efficiency"]) == pytest.approx((0.24, 0.03))
    assert (nlp["jobs"], nlp["kwh"]) == (1, pytest.approx(0.5))
    # the node is owned 3 h of the 4 (it appeared an hour in): 24 hardware, 6 fixed
    assert (idle["cost"]["hardware"], idle["cost"]["fixed"]) == pytest.approx((12.0, 3.0))

    settings = load_config(CoordinatorConfig, path=path, env={})
    client = TestClient(create_app(Api(engine, settings, SimpleNamespace(now=lambda: END))))
    token = tokens.create(engine, "read", "finance", END).token
    got = client.get(
        "/api/v1/report", params={"by": "account", "since": "4h"},
        headers={"Authorization": f"Bearer {token}"},
    )  # fmt: skip
    assert got.status_code == 200, got.text
    assert by_account(got.json()["rows"]) == rows
    assert got.json()["utilisation"][0]["group"] == "fleet"

    csv = CliRunner().invoke(
        app, ["report", "--by", "user", "--since", "4h", "--config", str(path), "--csv"]
    )
    assert csv.exit_code == 0, csv.output
    lines = csv.output.splitlines()
    assert lines[0].startswith("user,jobs,gpu_h_allocated,gpu_h_used,efficiency,kwh,cost_energy")
    assert any(line.startswith("nlp-user,1,8.0,") for line in lines)


def test_jobs_are_listed_by_account(fleet):
    _, path = fleet
    shown = CliRunner().invoke(app, ["jobs", "--account", "nlp", "--config", str(path), "--json"])
    assert shown.exit_code == 0, shown.output
    assert [(j["id"], j["account"], j["user"]) for j in json.loads(shown.output)] == [
        ("b", "nlp", "nlp-user")
    ]


def running(job_id: str, account: str) -> JobRecord:
    return JobRecord(
        id=job_id, argv=("train",), submitted_at=T0, gpus=2, state=JobState.RUNNING, node="g1",
        gpu_indices=(0, 1), started_at=T0, account=account, user=account,
    )  # fmt: skip


def watch(engine, path, registry: Registry, extra: str = "") -> CostWatch:
    path.write_text(config_text(str(engine.url.render_as_string(False)), path.parent, extra))
    return CostWatch(engine, load_config(CoordinatorConfig, path=path, env={}), registry)


def gpus_at(registry: Registry, ts: float, *utils: float) -> None:
    registry.nodes["g1"].latest = {"ts": ts, "gpu_utils": {str(i): u for i, u in enumerate(utils)}}


async def test_waste_is_flagged_once_after_waste_after_and_cancelled_when_asked(fleet):
    engine, path = fleet
    registry = Registry(30.0, [NodeView("g1", NodeState.ONLINE, T0, last_seen=T0)])
    costs = watch(engine, path, registry, 'waste_after = "30m"\nwaste_action = "cancel"')
    idle, busy = running("idle", "nlp"), running("busy", "vision")
    with engine.begin() as conn:
        for job in (idle, busy):
            job_rows.insert(conn, job, T0)
    gpus_at(registry, T0, 2.0, 1.0)
    await costs.waste([idle], T0)
    gpus_at(registry, T0 + 1799, 2.0, 1.0)
    await costs.waste([idle], T0 + 1799)
    assert costs.wasted == {}
    assert jobs_service.listing(engine, [], 10, wasteful=True) == []
    gpus_at(registry, T0 + 1800, 2.0, 1.0)
    await costs.waste([idle], T0 + 1800)
    await costs.waste([idle], T0 + 1801)  # once
    assert costs.wasted == {"nlp": 2}
    (flagged,) = jobs_service.listing(engine, [], 10, wasteful=True)
    assert (flagged.id, flagged.wasteful_at, flagged.cancel_requested) == ("idle", T0 + 1800, True)
    _, events = jobs_service.describe(engine, "idle")
    assert [e["kind"] for e in events].count("wasteful") == 1
    assert "2 GPUs on g1 at 1.5 % for 30 min" in next(
        e["detail"] for e in events if e["kind"] == "wasteful"
    )
    with engine.connect() as conn:
        (logged,) = power_rows.events(conn, node="g1", kinds=("waste",))
    assert "job idle holds 2 GPUs" in logged.reason
    gpus_at(registry, T0 + 1900, 90.0, 95.0)
    await costs.waste([busy], T0 + 4000)
    assert costs.wasted == {}
    listed = CliRunner().invoke(app, ["jobs", "--wasteful", "--config", str(path), "--json"])
    assert [j["id"] for j in json.loads(listed.output)] == ["idle"]


class Recorder:
    unable = None

    def __init__(self) -> None:
        self.sent: list[tuple[str, object]] = []

    async def send(self, node: str, body: object) -> bool:
        self.sent.append((node, body))
        return True


async def test_an_account_over_budget_has_its_next_job_held_and_nothing_else_touched(fleet):
    """nlp spent 10.15 on its ended job and 7.50 on the one running (a quarter of the node
    for the 3 h it is owned) against a budget of 10; with over_budget = hold its new job
    waits with the reason, vision's is placed, and nlp's running job is left alone."""
    engine, path = fleet
    hello = dataclasses.replace(factories.hello("g1"), cpus=64, gpus=GPUS)
    registry = Registry(30.0, [NodeView("g1", NodeState.ONLINE, END, last_seen=END, hello=hello)])
    budget = "[cost.accounts.nlp]\nbudget = 10\n[cost.accounts.vision]\nbudget = 100\n"
    costs = watch(engine, path, registry, f'over_budget = "hold"\n{budget}')
    work = running("still", "nlp")
    queued = [
        JobRecord(id=i, argv=("x",), submitted_at=END, gpus=1, account=a)
        for i, a in (("nlp-next", "nlp"), ("vision-next", "vision"))
    ]
    with engine.begin() as conn:
        for job in (work, *queued):
            job_rows.insert(conn, job, END)
    dispatcher = Dispatcher(
        engine, registry, load_config(CoordinatorConfig, path=path, env={}).jobs, Recorder(),
        latencies=ResumeLatencies(), default_resume_s=0.0, costs=costs,
    )  # fmt: skip
    await dispatcher.tick(END)
    assert costs.over == {"nlp": "account nlp has spent 17.65 of its budget 10.00 (176 %)"}
    states = {j.id: j.state for j in jobs_service.listing(engine, [], 10)}
    assert states["nlp-next"] is JobState.PENDING
    assert states["vision-next"] is JobState.PLACED
    assert states["still"] is JobState.RUNNING
    assert jobs_service.held_notes(engine, jobs_service.listing(engine, [], 10)) == {
        "nlp-next": "held (over budget)"
    }
    _, events = jobs_service.describe(engine, "nlp-next")
    assert "account nlp has spent 17.65" in events[-1]["detail"]

    with engine.connect() as conn:
        said = conn.execute(sa.select(budget_events.c.account, budget_events.c.threshold_pct))
        assert sorted(said) == [("nlp", 80), ("nlp", 100)]
    await dispatcher.tick(END + 600)  # past budget_check: added up again, said no more
    again = watch(engine, path, registry, f'over_budget = "hold"\n{budget}')  # a new leader
    await again.budgets(END + 700)
    with engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(budget_events)).scalar()
    assert count == 2
    assert [(s.account, round(s.spent, 2)) for s in again.standings] == [
        ("nlp", 18.14),  # the running job, 700 s on
        ("vision", 5.2),
    ]

    jobs_service.release(engine, "nlp-next", END + 800)  # an operator's release passes it by
    await dispatcher.tick(END + 801)
    assert jobs_service.describe(engine, "nlp-next")[0].state is JobState.PLACED
