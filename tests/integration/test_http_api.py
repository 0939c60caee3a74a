"""The HTTP API in process (Starlette's test client) over a real store, SQLite and
PostgreSQL: every endpoint, the token scopes, and malformed input refused with nothing
stored."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient
from typer.testing import CliRunner

from coordinator.core.nodestate import NodeState
from coordinator.core.registry import NodeView
from coordinator.http.api import ENDPOINTS, Api
from coordinator.http.app import create_app
from coordinator.http.openapi import openapi_path
from coordinator.main import app
from coordinator.placement.model import ClusterSnapshot
from coordinator.placement.state import ClusterState
from coordinator.services import tokens
from coordinator.settings import CoordinatorConfig
from coordinator.store import nodes as node_rows
from coordinator.store import power as power_rows
from coordinator.store.engine import create_engine, upgrade
from coordinator.store.models import jobs as jobs_table
from shared.clock import SystemClock
from tests import factories
from tests.unit.placement_support import node


def seed(engine: sa.Engine) -> None:
    views = [
        NodeView(
            name="gpu-01",
            state=NodeState.ONLINE,
            state_since=factories.TS,
            last_seen=time.time(),
            hello=factories.hello("gpu-01"),
            latest={"cpu_util_pct": 12.0, "power_w": 180.0, "connections": 1},
        ),
        NodeView(
            name="gpu-02",
            state=NodeState.ASLEEP,
            state_since=factories.TS,
            hello=factories.hello("gpu-02"),
        ),
    ]
    with engine.begin() as conn:
        node_rows.save_nodes(conn, views)


@pytest.fixture
def service(db_url, tmp_path):
    engine = create_engine(db_url)
    upgrade(engine)
    seed(engine)
    settings = dataclasses.replace(
        CoordinatorConfig(), db=db_url, command_key_file=tmp_path / "no.key"
    )
    client = TestClient(create_app(Api(engine, settings, SystemClock())))
    now = time.time()
    read = tokens.create(engine, "read", "console", now).token
    write = tokens.create(engine, "write", "ci", now).token
    yield client, engine, {"read": read, "write": write}
    engine.dispose()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def job_count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(jobs_table)).scalar_one())


def test_openapi_documents_every_endpoint(service):
    client, _, _ = service
    answer = client.get("/api/v1/openapi.json")
    assert answer.status_code == 200
    paths = answer.json()["paths"]
    for endpoint in ENDPOINTS:
        assert endpoint.method.lower() in paths[openapi_path(endpoint.path)], endpoint.path
    post_jobs = paths["/api/v1/jobs"]["post"]
    assert post_jobs["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/JobRequest"
    }


def test_nodes_list_one_and_history(service):
    client, _, token = service
    headers = auth(token["read"])
    nodes = client.get("/api/v1/nodes", headers=headers).json()["nodes"]
    assert [(n["node"], n["state"]) for n in nodes] == [("gpu-01", "online"), ("gpu-02", "asleep")]
    assert nodes[0]["cpu_util_pct"] == 12.0
    one = client.get("/api/v1/nodes/gpu-01", headers=headers).json()["node"]
    assert one["hello"]["cpus"] == 32
    assert one["wakes_measured"] == 0
    missing = client.get("/api/v1/nodes/nope", headers=headers)
    assert missing.status_code == 404
    assert "unknown node 'nope'" in missing.json()["reason"]
    history = client.get(
        "/api/v1/nodes/gpu-01/history?metric=power_w&since=2h&step=5m", headers=headers
    )
    assert history.status_code == 200, history.text
    assert (history.json()["unit"], history.json()["tier"]) == ("W", "minute")
    bad = client.get("/api/v1/nodes/gpu-01/history?metric=nope", headers=headers)
    assert (bad.status_code, bad.json()["field"]) == (422, "metric")
    assert (
        client.get("/api/v1/nodes/nope/history?metric=power_w", headers=headers).status_code == 404
    )


def test_jobs_submit_show_list_cancel(service):
    client, engine, token = service
    body = {"argv": ["python", "-c", "pass"], "cpus": 1, "runtime_s": 60, "deadline_s": 600}
    created = client.post("/api/v1/jobs", json=body, headers=auth(token["write"]))
    assert created.status_code == 201, created.text
    answer = created.json()
    assert (answer["node"], answer["basis"]) == ("gpu-01", "now")
    assert answer["held"].startswith("no command key")
    job_id = answer["id"]
    shown = client.get(f"/api/v1/jobs/{job_id}", headers=auth(token["read"])).json()
    assert shown["job"]["argv"] == ["python", "-c", "pass"]
    assert shown["job"]["deadline"] - shown["job"]["submitted_at"] == pytest.approx(600)
    assert [e["kind"] for e in shown["events"]] == ["submitted"]
    listed = client.get("/api/v1/jobs?state=pending", headers=auth(token["read"])).json()
    assert [j["id"] for j in listed["jobs"]] == [job_id]
    assert client.get("/api/v1/jobs?state=bogus", headers=auth(token["read"])).status_code == 422
    cancelled = client.post(f"/api/v1/jobs/{job_id}/cancel", headers=auth(token["write"]))
    assert cancelled.json()["job"]["state"] == "cancelled"
    again = client.post(f"/api/v1/jobs/{job_id}/cancel", headers=auth(token["write"]))
    assert again.status_code == 409
    assert client.get("/api/v1/jobs/nope", headers=auth(token["read"])).status_code == 404
    assert job_count(engine) == 1


def test_job_no_node_could_run_is_422_and_not_stored(service):
    client, engine, token = service
    body = {"argv": ["x"], "gpus": 64}
    refused = client.post("/api/v1/jobs", json=body, headers=auth(token["write"]))
    assert refused.status_code == 422
    assert "no node in the fleet could ever run it" in refused.json()["reason"]
    assert job_count(engine) == 0


def test_power_request_events_report_status_pick(service, db_url, tmp_path):
    client, engine, token = service
    asked = client.post("/api/v1/nodes/gpu-01/sleep", json={}, headers=auth(token["write"]))
    assert asked.status_code == 202, asked.text
    request_id = asked.json()["request"]
    with engine.connect() as conn:
        assert [r.id for r in power_rows.open_requests(conn)] == [request_id]
    outcome = client.get(f"/api/v1/power/requests/{request_id}", headers=auth(token["read"]))
    assert outcome.json() == {"request": request_id, "outcome": None}
    assert client.post("/api/v1/nodes/nope/wake", headers=auth(token["write"])).status_code == 404
    assert (
        client.post("/api/v1/nodes/gpu-01/reboot", headers=auth(token["write"])).status_code == 422
    )
    events = client.get("/api/v1/power/events?node=gpu-01", headers=auth(token["read"]))
    assert events.status_code == 200
    assert isinstance(events.json()["events"], list)
    report = client.get("/api/v1/report?since=1d", headers=auth(token["read"])).json()
    assert set(report) >= {"nodes", "jobs", "totals", "caveats"}
    status = client.get("/api/v1/status", headers=auth(token["read"])).json()
    assert status["placement_held"].startswith("no command key")
    key = {"DORMOUSE_COMMAND_KEY_FILE": str(tmp_path / "no.key")}
    printed = CliRunner().invoke(app, ["status", "--json", "--db", db_url], env=key)
    assert json.loads(printed.stdout) == status  # the same document, key for key
    picked = client.post("/api/v1/pick", json={"gpus": 1}, headers=auth(token["read"]))
    assert picked.json()["node"] == "gpu-01"
    none = client.post("/api/v1/pick", json={"gpus": 8}, headers=auth(token["read"]))
    assert (none.status_code, none.json()["error"]) == (409, "no_node")


def test_least_connections_pick_reads_the_daemons_kept_state(service, tmp_path):
    """Inside `dormouse run` the API's least-connections pick answers from the kept placement
    state (a node only that state knows is picked); before the first pass, and for the
    strategies that keep state in the store, it reads the store."""
    _, engine, token = service
    state = ClusterState.of(ClusterSnapshot((node("kept-01", gpus=2),)))
    kept: list[ClusterState | None] = [None]
    settings = dataclasses.replace(CoordinatorConfig(), command_key_file=tmp_path / "no.key")
    client = TestClient(create_app(Api(engine, settings, SystemClock(), kept=lambda: kept[0])))

    def picked(body: dict) -> dict:
        return client.post("/api/v1/pick", json=body, headers=auth(token["read"])).json()

    assert picked({"gpus": 1})["node"] == "gpu-01"  # no pass yet: the store
    kept[0] = state
    assert picked({"gpus": 1}) == {
        "node": "kept-01",
        "connections": 0,
        "jobs": 0,
        "util_pct": 0.0,
        "free_gpus": [0, 1],
        "strategy": "least-connections",
        "owner": None,
        "spilled": None,
    }
    assert picked({"gpus": 1, "strategy": "round-robin"})["node"] == "gpu-01"
    refused = picked({"gpus": 4})
    assert refused["error"] == "no_node"
    assert refused["reason"] == "no node in the fleet could ever take this request"


def test_tokens_gate_reads_and_writes(service, db_url):
    client, engine, token = service
    body = {"argv": ["true"]}
    missing = client.get("/api/v1/nodes")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/api/v1/nodes", headers=auth("dm_forged")).status_code == 401
    assert client.get("/api/v1/stream", headers=auth("dm_forged")).status_code == 401
    read_post = client.post("/api/v1/jobs", json=body, headers=auth(token["read"]))
    assert read_post.status_code == 403
    assert read_post.json()["error"] == "forbidden"
    assert client.get("/api/v1/nodes", headers=auth(token["write"])).status_code == 200
    for listed in tokens.listing(engine):
        tokens.revoke(engine, listed["id"])
    assert client.get("/api/v1/nodes", headers=auth(token["write"])).status_code == 401
    assert job_count(engine) == 0


def test_anonymous_read_opens_reads_only(service, tmp_path):
    _, engine, _ = service
    base = CoordinatorConfig()
    settings = dataclasses.replace(base, http=dataclasses.replace(base.http, anonymous_read=True))
    client = TestClient(create_app(Api(engine, settings, SystemClock())))
    assert client.get("/api/v1/nodes").status_code == 200
    assert client.post("/api/v1/jobs", json={"argv": ["true"]}).status_code == 401


MALFORMED: list[object] = [
    b"",
    b"{",
    b"[]",
    b"null",
    b"42",
    b'"argv"',
    b"\xff\xfe",
    b"{" + b'"a":' * 10 + b"1",
    {},
    {"argv": []},
    {"argv": "python"},
    {"argv": [1, 2]},
    {"argv": [""]},
    {"argv": [None]},
    {"argv": ["x"] * 10_000},
    {"argv": ["x" * 5000]},
    {"argv": ["x"], "cpus": -1},
    {"argv": ["x"], "cpus": "2"},
    {"argv": ["x"], "cpus": 1.5},
    {"argv": ["x"], "cpus": True},
    {"argv": ["x"], "cpus": 10**12},
    {"argv": ["x"], "gpus": -1},
    {"argv": ["x"], "gpus": None},
    {"argv": ["x"], "mem": "lots"},
    {"argv": ["x"], "mem": -5},
    {"argv": ["x"], "mem": [1]},
    {"argv": ["x"], "runtime_s": 0},
    {"argv": ["x"], "runtime_s": -60},
    {"argv": ["x"], "runtime_s": "soon"},
    {"argv": ["x"], "runtime_s": 1e300},
    {"argv": ["x"], "deadline_s": 0},
    {"argv": ["x"], "deadline_s": "yesterday"},
    {"argv": ["x"], "deadline_s": [600]},
    {"argv": ["x"], "deadline_s": float("nan")},
    {"argv": ["x"], "priority": "high"},
    {"argv": ["x"], "name": 7},
    {"argv": ["x"], "name": "n" * 500},
    {"argv": ["x"], "labels": ["rack=r1"]},
    {"argv": ["x"], "labels": {"rack": 1}},
    {"argv": ["x"], "labels": {"bad key!": "v"}},
    {"argv": ["x"], "requeue": "yes"},
    {"argv": ["x"], "gpu": 1},
    {"argv": ["x"], "deadline": 600},
    {"argv": ["x"], "id": "mine"},
    {"cpus": 1, "runtime_s": 60},
    {"argv": ["x"], "cpus": None},
    {"argv": ["x"], "runtime_s": None},
    {"argv": ["x"], "priority": 10**9},
    {"argv": {"0": "x"}},
    b'{"argv": ["x"], "cpus": 1, "cpus": "two"}',
]


def test_fifty_malformed_bodies_refused_nothing_stored(service):
    client, engine, token = service
    assert len(MALFORMED) == 50
    for body in MALFORMED:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        answer = client.post(
            "/api/v1/jobs",
            content=raw,
            headers=auth(token["write"]) | {"content-type": "application/json"},
        )
        assert 400 <= answer.status_code < 500, (body, answer.status_code, answer.text)
        refusal = answer.json()
        assert refusal["reason"], body
        if answer.status_code == 422:
            assert refusal.get("field"), (body, refusal)
    assert job_count(engine) == 0
    assert client.get("/api/v1/nodes", headers=auth(token["read"])).status_code == 200


def test_console_and_its_files_are_served(service):
    client, _, token = service
    page = client.get("/")
    assert page.status_code == 200
    assert "<title>dormouse</title>" in page.text
    assert client.get("/console/console.js").status_code == 200
    missing = client.get("/no/such/page")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    deleted = client.delete("/api/v1/nodes", headers=auth(token["read"]))
    assert (deleted.status_code, deleted.json()["error"]) == (405, "method_not_allowed")


def test_crafted_inputs_are_refused_never_a_500(service):
    """Black-box finds: a body nested 1,000 deep (RecursionError), an id past 64 bits
    (OverflowError), a body past the limit (read whole before), no console headers."""
    client, engine, token = service
    write = auth(token["write"]) | {"content-type": "application/json"}
    for path in ("/api/v1/jobs", "/api/v1/pick"):
        deep = client.post(path, content=b"[" * 1000 + b"]" * 1000, headers=write)
        assert (deep.status_code, deep.json()["field"]) == (422, "body"), path
        assert "nested deeper" in deep.json()["reason"]
    quoted = client.post("/api/v1/jobs", content=json.dumps({"name": "[" * 100}), headers=write)
    assert quoted.status_code == 422
    assert quoted.json()["field"] != "body"  # brackets in a string are not nesting
    huge = client.get("/api/v1/power/requests/99999999999999999999999", headers=auth(token["read"]))
    assert huge.status_code == 404
    declared = client.post("/api/v1/jobs", content=b" " * (200 * 1024), headers=write)
    assert (declared.status_code, declared.json()["error"]) == (413, "too_large")

    def pieces():  # no content-length: the limit applies while reading
        for _ in range(200):
            yield b" " * 1024

    streamed = client.post("/api/v1/jobs", content=pieces(), headers=write)
    assert streamed.status_code == 413
    assert job_count(engine) == 0
    page = client.get("/")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
