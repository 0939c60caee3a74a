"""`GET /api/v1/fleet/timeline` over a real store (SQLite and PostgreSQL): a node's five
minutes asleep as an asleep band and a lane period, power measured and estimated, the
queue's demand, energy, one answer shared by every poll within its age, bad queries."""

from __future__ import annotations

import dataclasses
import time

import pytest
from starlette.testclient import TestClient

from coordinator.http.api import Api
from coordinator.http.app import create_app
from coordinator.services import history, tokens
from coordinator.services import timeline as timeline_service
from coordinator.settings import CoordinatorConfig
from coordinator.store.engine import create_engine, upgrade
from shared.clock import SystemClock
from tests import fleet_timeline

HOUR = 3600.0


@pytest.fixture
def served(db_url, tmp_path):
    engine = create_engine(db_url)
    upgrade(engine)
    fleet = fleet_timeline.write(engine, ["t-a", "t-b", "t-c"], time.time(), HOUR)
    settings = dataclasses.replace(CoordinatorConfig(), db=db_url, command_key_file=tmp_path / "k")
    client = TestClient(create_app(Api(engine, settings, SystemClock())))
    token = tokens.create(engine, "read", "console", time.time()).token
    client.headers["Authorization"] = f"Bearer {token}"
    yield client, fleet
    engine.dispose()


def test_the_sleep_shows_as_a_band_a_lane_and_saved_energy(served):
    client, fleet = served
    got = client.get("/api/v1/fleet/timeline?since=1h&step=1m")
    assert got.status_code == 200, got.text
    body = got.json()
    assert (body["step_s"], body["tier"]) == (60, "minute")
    times, asleep = body["times"], body["states"]["asleep"]
    slept = [t for t, n in zip(times, asleep, strict=True) if n > 0]
    assert slept == [fleet.asleep[0] + 60 * k for k in range(5)]  # five whole minutes
    assert [n for n in asleep if n > 0] == [1.0, 1.0, 1.0, 1.0, 0.5]  # then 30 s waking
    assert body["states"]["waking"][times.index(fleet.asleep[0] + 240)] == 0.5
    lanes = {lane["node"]: lane for lane in body["lanes"]}
    assert [fleet.asleep[0], fleet.asleep[1] - 30, "asleep"] in lanes[fleet.sleeper]["periods"]
    assert [fleet.asleep[1] - 30, fleet.asleep[1], "waking"] in lanes[fleet.sleeper]["periods"]
    kinds = [e[1] for e in lanes[fleet.sleeper]["events"]]
    assert kinds == ["sleep", "asleep", "wake", "resumed"]
    running = [j for j in lanes["t-a"]["jobs"] if j[0] == "job-running"]
    assert [j[3] for j in running] == [None]  # still running: no end
    assert any(p[2] == "busy" for p in lanes["t-a"]["periods"])
    measured = body["power_w"]["measured"]
    i = times.index(fleet.asleep[0] + 120)
    assert measured[i] == pytest.approx(measured[i - 10] - measured[i - 10] / 2, rel=0.2)
    estimated = body["power_w"]["estimated"]
    assert estimated[i] == pytest.approx(100.0 + 5.0)  # t-c unmeasured at 100 W, t-b asleep
    assert body["measuring"] == 2
    assert max(body["demand"]["gpus"]) == pytest.approx(2.0)  # the waiting job, 2 GPUs
    assert body["energy"]["saved_kwh"] == pytest.approx(SLEEP_KWH, rel=0.15)
    assert body["energy"]["used_kwh"] > 0


SLEEP_KWH = (300 - 30) * (100.0 - 5.0) / 3.6e6  # asleep 270 s of the 5 min, then waking


def test_polls_share_one_answer_and_bad_queries_are_422(served):
    client, _ = served
    first = client.get("/api/v1/fleet/timeline?since=1h").content
    assert client.get("/api/v1/fleet/timeline?since=1h").content == first  # within 30 s
    for query in ("since=0s", "since=40d", "step=1s", "since=7d&step=1m", "since=soon"):
        answer = client.get(f"/api/v1/fleet/timeline?{query}")
        assert answer.status_code == 422, (query, answer.text)
        assert answer.json()["reason"], query


def test_a_poll_rereads_only_the_newest_steps_and_late_minutes(served, db_url):
    """The kept power matches a fresh read, though the second poll read only its tail; a
    minute rolled up late within the re-read steps is picked up."""
    _, fleet = served
    engine = create_engine(db_url)
    settings = dataclasses.replace(CoordinatorConfig(), db=db_url)
    kept = timeline_service.MeasuredPower()
    now = fleet.now
    first = timeline_service.fleet_timeline(engine, settings, now - HOUR, 60, now, kept)
    reads = []
    real = history.grouped

    def counted(engine, query, *args):
        reads.append(query.since)
        return real(engine, query, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(history, "grouped", counted)
        again = timeline_service.fleet_timeline(engine, settings, now - HOUR, 60, now + 60, kept)
    measured = zip(first["times"], first["power_w"]["measured"], strict=True)
    newest = max(t for t, watts in measured if watts is not None)
    assert reads == [newest - 2 * 60]  # the tail only
    fresh = timeline_service.fleet_timeline(engine, settings, now - HOUR, 60, now + 60)
    assert again["power_w"] == fresh["power_w"]
    assert again["measuring"] == fresh["measuring"] == 2
    engine.dispose()
