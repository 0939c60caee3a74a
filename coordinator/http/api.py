"""The `/api/v1/` endpoints: each parses its input (`bodies`), calls the services the CLI
calls, in a worker thread (they are blocking SQL), and answers JSON. The table at the end
is the API: the app mounts it and the OpenAPI document is written from it."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from coordinator.core import fleet
from coordinator.core.series import FleetQuery, SeriesQuery
from coordinator.http import bodies
from coordinator.http.bodies import Invalid
from coordinator.http.cache import Fresh
from coordinator.placement import model as placement
from coordinator.placement.balance import Strategy
from coordinator.placement.pick import Picked, pick_kept
from coordinator.placement.state import ClusterState
from coordinator.power import chargeback
from coordinator.services import history as history_service
from coordinator.services import jobs as jobs_service
from coordinator.services import nodes as node_service
from coordinator.services import output as output_service
from coordinator.services import power as power_service
from coordinator.services import report as report_service
from coordinator.services import status as status_service
from coordinator.services import timeline as timeline_service
from coordinator.settings import CoordinatorConfig
from shared.clock import Clock
from shared.config import parse_labels
from shared.errors import NotFound
from shared.messages import OUTPUT_BYTES, OUTPUT_STREAMS
from shared.metrics import BY_NAME, Metric, Scope

MAX_BODY = 64 * 1024
MAX_TIMELINE_S = 30 * 86400
MAX_DEPTH = 32  # the deepest a request body nests (jobs nest 3)
POWER_ACTIONS = ("sleep", "wake", "clear")
TIMELINE_WINDOWS = 8  # windows whose answers are kept
QUEUE_SHOWN = 200  # the newest jobs the console's live view shows
EVENTS_SHOWN = 30  # and power events


@dataclass(frozen=True)
class Listing:
    nodes: list[dict[str, Any]]

    @cached_property
    def body(self) -> bytes:
        """`{"nodes": [...]}`, encoded once for every reader, when one first asks."""
        return json.dumps({"nodes": self.nodes}, separators=(",", ":")).encode()

    @cached_property
    def shapes(self) -> dict[str, dict[str, Any]]:
        """Node -> its summary but `last_seen`: what the live stream compares."""
        return {n["node"]: {k: v for k, v in n.items() if k != "last_seen"} for n in self.nodes}


@dataclass(frozen=True, slots=True)
class Api:
    """What every handler needs: the store, the settings and the clock; and the fleet
    listing, read from the store at most once per `fleet_max_age_s`."""

    engine: sa.Engine
    settings: CoordinatorConfig
    clock: Clock
    fleet_max_age_s: float = 1.0
    kept: Callable[[], ClusterState | None] | None = None  # the daemon's placement state
    # runs a call on the daemon's loop, where `kept` may be read; None: in this loop
    in_daemon: Callable[[Callable[[], Any]], Awaitable[Any]] | None = None
    timeline_max_age_s: float = 30.0
    fleet: Fresh[Listing] = field(init=False)
    queue: Fresh[dict[str, Any]] = field(init=False)  # the stream's jobs and power events
    states: Fresh[dict[str, str]] = field(init=False)  # every node's state, for the stream
    timelines: dict[tuple[float, float], Fresh[bytes]] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fleet", Fresh(self._listing, self.fleet_max_age_s))
        object.__setattr__(self, "queue", Fresh(self._queue, self.fleet_max_age_s))
        states = Fresh(lambda: node_service.states(self.engine), self.fleet_max_age_s / 2)
        object.__setattr__(self, "states", states)
        object.__setattr__(self, "timelines", {})

    def _queue(self) -> dict[str, Any]:
        """The newest jobs (a held one with its hold) and power events, as the stream sends."""
        found = jobs_service.listing(self.engine, [], QUEUE_SHOWN)
        held = jobs_service.held_notes(self.engine, found)
        events = power_service.events(self.engine, None, EVENTS_SHOWN)
        return {
            "jobs": [jobs_service.summary(j) | {"held": held.get(j.id)} for j in found],
            "events": [power_service.event_json(e) for e in events],
        }

    def timeline(self, since_s: float, step_s: float) -> Fresh[bytes]:
        """One shared, encoded answer per window asked (the console asks four): however
        many tabs poll, the store is read at most once per `timeline_max_age_s` each."""
        key = (since_s, step_s)
        if key not in self.timelines:
            if len(self.timelines) >= TIMELINE_WINDOWS:
                self.timelines.pop(next(iter(self.timelines)))

            power = timeline_service.MeasuredPower()

            def build() -> bytes:
                now = self.clock.now()
                found = timeline_service.fleet_timeline(
                    self.engine, self.settings, now - since_s, step_s, now, power
                )
                return json.dumps(found, separators=(",", ":")).encode()

            self.timelines[key] = Fresh(build, self.timeline_max_age_s)
        return self.timelines[key]

    @property
    def own_key(self) -> str | None:
        """The command key's id, read when asked: a key installed later counts."""
        return node_service.own_key_id(self.settings.command_key_file)

    def _listing(self) -> Listing:
        return Listing(node_service.summaries(self.engine, self.own_key))


Handler = Callable[[Api, Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One route: the scope a token needs (None: open), and what the OpenAPI document says."""

    method: str
    path: str
    handler: Handler
    scope: str | None
    summary: str
    body: str | None = None  # the name of its request schema in openapi.SCHEMAS
    query: tuple[str, ...] = ()
    answers: dict[int, str] = field(default_factory=dict)


def ok(payload: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(payload, status_code=status)


class TooLarge(Invalid):
    """A body past MAX_BODY: refused while it is read (413), never held whole."""


async def body_of(request: Request) -> object:
    """The JSON body, read in pieces and refused as soon as it passes MAX_BODY, or nests
    deeper than MAX_DEPTH (a 2 KB body of 1,000 brackets would exhaust the parser's
    recursion)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise TooLarge("body", f"larger than {MAX_BODY} bytes")
    raw = bytearray()
    async for piece in request.stream():
        raw += piece
        if len(raw) > MAX_BODY:
            raise TooLarge("body", f"larger than {MAX_BODY} bytes")
    if not raw:
        return None
    if too_deep(raw):
        raise Invalid("body", f"nested deeper than {MAX_DEPTH}")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise Invalid("body", f"not JSON: {exc}") from None


def too_deep(raw: bytes | bytearray) -> bool:
    """Brackets nested past MAX_DEPTH (counted outside strings), before parsing."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return False
    depth, quoted, escaped = 0, False, False
    for byte in raw:
        if quoted:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # a backslash escapes the next byte
                escaped = True
            elif byte == 0x22:
                quoted = False
            continue
        if byte == 0x22:
            quoted = True
        elif byte in b"[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif byte in b"]}":
            depth -= 1
    return False


async def list_nodes(api: Api, request: Request) -> Response:
    """From the fleet listing: at most `fleet_max_age_s` older than the store's rows."""
    return Response((await api.fleet.get()).body, media_type="application/json")


async def get_node(api: Api, request: Request) -> JSONResponse:
    name = request.path_params["node"]
    found = await run_in_threadpool(node_service.detail, api.engine, name, api.own_key)
    return ok({"node": found})


async def node_history(api: Api, request: Request) -> JSONResponse:
    query = request.query_params
    metric = _metric(query.get("metric", ""))
    agg = query.get("agg", "avg")
    if agg not in history_service.AGGREGATES:
        raise Invalid("agg", f"expected one of {', '.join(history_service.AGGREGATES)}")
    gpu = bodies.count(query, "gpu", 0, 0, 1023)
    now = api.clock.now()
    series = SeriesQuery(
        node=request.path_params["node"],
        metric=metric,
        gpu_index=gpu if metric.scope is Scope.GPU else -1,
        since=now - bodies.duration(query, "since", "1h"),
        until=now,
        step_s=bodies.duration(query, "step", "1m"),
    )
    retention = api.settings.retention
    tier, points = await run_in_threadpool(
        history_service.series, api.engine, series, agg, retention, now
    )
    header = {"node": series.node, "metric": metric.name, "unit": metric.unit, "tier": tier}
    return ok(header | {"points": points})


async def fleet_history(api: Api, request: Request) -> JSONResponse:
    """`dormouse history --by`: one series per group of nodes (the same JSON)."""
    query = request.query_params
    metric = _metric(query.get("metric", ""))
    agg = query.get("agg", "avg")
    if agg not in history_service.FLEET_AGGREGATES:
        raise Invalid("agg", f"expected one of {', '.join(history_service.FLEET_AGGREGATES)}")
    by = query.get("by", "fleet")
    try:
        fleet.parse_by(by)
    except ValueError as exc:
        raise Invalid("by", str(exc)) from None
    try:
        wanted = parse_labels(",".join(query.getlist("label")))
    except ValueError as exc:
        raise Invalid("label", str(exc)) from None
    gpu = bodies.count(query, "gpu", 0, 0, 1023) if "gpu" in query else None
    now = api.clock.now()
    asked = FleetQuery(
        metric=metric,
        since=now - bodies.duration(query, "since", "1h"),
        until=now,
        step_s=bodies.duration(query, "step", "1m"),
        agg=agg,
        gpu=gpu if metric.scope is Scope.GPU else None,
    )
    answer = await run_in_threadpool(
        history_service.grouped, api.engine, asked, by, query.get("nodes"), wanted,
        api.settings.retention, now,
    )  # fmt: skip
    return ok(answer)


def _metric(name: str) -> Metric:
    metric = BY_NAME.get(name)
    if metric is None or metric.vector:
        known = ", ".join(m.name for m in BY_NAME.values() if not m.vector)
        raise Invalid("metric", f"unknown metric {name!r}; metrics: {known}")
    return metric


async def list_jobs(api: Api, request: Request) -> JSONResponse:
    states = request.query_params.getlist("state")
    limit = bodies.limit(request.query_params, 1000)
    account = request.query_params.get("account")
    wasteful = request.query_params.get("wasteful", "") in {"1", "true"}
    found = await run_in_threadpool(
        lambda: jobs_service.listing(api.engine, states, limit, account=account, wasteful=wasteful)
    )
    return ok({"jobs": [jobs_service.summary(j) for j in found]})


async def submit_job(api: Api, request: Request) -> JSONResponse:
    now = api.clock.now()
    user = getattr(request.state, "token_name", None) or ""
    account = api.settings.cost.default_account or user or "default"
    job = bodies.job(await body_of(request), jobs_service.new_job_id(), now, user, account)
    answer = await run_in_threadpool(jobs_service.queue, api.engine, api.settings, job, now)
    return ok(answer.fields, 201)


async def get_job(api: Api, request: Request) -> JSONResponse:
    job_id, key_file = request.path_params["job_id"], api.settings.command_key_file
    return ok(await run_in_threadpool(jobs_service.detail, api.engine, job_id, key_file))


async def job_logs(api: Api, request: Request) -> JSONResponse:
    """The end of a job's output kept when it ended; with `?live=1`, a piece read from its
    node now (`stream=stdout|stderr`, `offset`: a byte offset, default the last 16 KiB;
    409 when the node cannot be asked: asleep, failed, no such output)."""
    job_id, query = request.path_params["job_id"], request.query_params
    if query.get("live", "") not in {"1", "true"}:
        return ok(await run_in_threadpool(jobs_service.logs, api.engine, job_id))
    stream = query.get("stream", "stdout")
    if stream not in OUTPUT_STREAMS:
        raise bodies.Invalid("stream", f"expected stdout or stderr, got {stream!r}")
    offset = bodies.count(query, "offset", 0, 0, 1 << 62) if "offset" in query else -OUTPUT_BYTES
    piece = await run_in_threadpool(output_service.fetch, api.engine, job_id, stream, offset)
    return ok(piece)


async def release_job(api: Api, request: Request) -> JSONResponse:
    """`dormouse jobs release ID`: a held job starts at the next pass (409: not pending)."""
    job_id = request.path_params["job_id"]
    record = await run_in_threadpool(jobs_service.release, api.engine, job_id, api.clock.now())
    return ok({"job": jobs_service.summary(record), "released": True})


async def cancel_job(api: Api, request: Request) -> JSONResponse:
    job_id = request.path_params["job_id"]
    record = await run_in_threadpool(jobs_service.cancel, api.engine, job_id, api.clock.now())
    return ok({"job": jobs_service.summary(record), "cancel_requested": record.cancel_requested})


async def power_action(api: Api, request: Request) -> JSONResponse:
    """Queued for the coordinator's next pass; waits up to `wait_s` for its answer."""
    node, action = request.path_params["node"], request.path_params["action"]
    if action not in POWER_ACTIONS:
        raise Invalid("action", f"expected one of {', '.join(POWER_ACTIONS)}")
    ask = bodies.power(await body_of(request))
    request_id = await run_in_threadpool(
        lambda: power_service.request(
            api.engine, node, action, force=ask.force, now=api.clock.now()
        )
    )
    outcome = None
    if ask.wait_s > 0:
        outcome = await run_in_threadpool(
            power_service.await_outcome, api.engine, request_id, ask.wait_s
        )
    answer = {"request": request_id, "node": node, "action": action, "outcome": outcome}
    return ok(answer, 202 if outcome is None else 200)


async def power_request(api: Api, request: Request) -> JSONResponse:
    raw = request.path_params["request_id"]
    if raw > 2**63 - 1:  # no such row can exist; the database would refuse the number
        raise NotFound(f"no power request {raw}")
    outcome = await run_in_threadpool(power_service.outcome, api.engine, raw)
    return ok({"request": raw, "outcome": outcome})


async def power_events(api: Api, request: Request) -> JSONResponse:
    node = request.query_params.get("node")
    limit = bodies.limit(request.query_params, 50, high=10_000)
    found = await run_in_threadpool(power_service.events, api.engine, node, limit)
    return ok({"events": [power_service.event_json(e) for e in found]})


async def get_report(api: Api, request: Request) -> JSONResponse:
    """The whole report, or with `by=account|user|node|job` the chargeback rows that
    `dormouse report --by ... --json` prints, under "rows"."""
    window = bodies.duration(request.query_params, "since", "7d")
    top = bodies.limit(request.query_params, 20, high=10_000)
    by = request.query_params.get("by", "all")
    if by != "all":
        if by not in chargeback.BY:
            raise Invalid("by", f"expected all, {', '.join(chargeback.BY)}; got {by!r}")
        bill = await run_in_threadpool(
            lambda: report_service.charged(
                api.engine, api.settings, by, window_s=window, now=api.clock.now()
            )
        )
        return ok(report_service.chargeback_json(bill))
    result = await run_in_threadpool(
        lambda: report_service.build(api.engine, api.settings, window_s=window, now=api.clock.now())
    )
    return ok(report_service.as_json(result, top))


async def fleet_timeline(api: Api, request: Request) -> Response:
    """The console's front page: nodes by state, power measured and estimated, queued
    demand, energy used and saved, and a lane per node, over `since` in steps of `step`."""
    query = request.query_params
    since = bodies.duration(query, "since", "6h")
    step = bodies.duration(query, "step", _default_step(since))
    if not 0 < since <= MAX_TIMELINE_S:
        raise Invalid("since", "expected a duration from 1m to 30d")
    if step < 60 or since / step > timeline_service.MAX_STEPS:
        raise Invalid(
            "step", f"expected 1m or more, and at most {timeline_service.MAX_STEPS} steps"
        )
    body = await api.timeline(since, step).get()
    return Response(body, media_type="application/json")


def _default_step(since: float) -> str:
    """About a hundred steps: 1 h in minutes, 6 h in 5 min, a day in 15 min, a week in 2 h."""
    for longest, step in ((3600, "1m"), (6 * 3600, "5m"), (86400, "15m")):
        if since <= longest:
            return step
    return "2h"


async def get_status(api: Api, request: Request) -> JSONResponse:
    """The document `dormouse status --json` prints (`services.status`)."""
    found = await run_in_threadpool(
        status_service.document,
        api.engine,
        api.settings.command_key_file,
        api.settings.leader_lease,
    )
    return ok(found)


async def pick(api: Api, request: Request) -> JSONResponse:
    """Least connections inside `dormouse run` reads the daemon's kept state, in its own
    event loop (so never while a pass changes it); other strategies keep state in the store
    (the round-robin cursor, affinity notes), and a process without a daemon reads the store."""
    ask = bodies.pick(await body_of(request))
    picked: Picked | str | None = None
    if ask.strategy is Strategy.LEAST_CONNECTIONS and api.kept is not None:
        picked = await _on_daemon(api, lambda: _kept_pick(api, ask.request))
    if picked is None:
        picked = await run_in_threadpool(
            lambda: jobs_service.pick(
                api.engine,
                ask.request,
                strategy=ask.strategy,
                key=ask.key,
                balance_factor=api.settings.jobs.balance_factor,
                now=api.clock.now(),
            )
        )
    if not isinstance(picked, Picked):
        return ok({"error": "no_node", "reason": picked}, 409)
    return ok(asdict(picked) | {"free_gpus": list(picked.free_gpus)})


def _kept_pick(api: Api, asked: placement.Request) -> Picked | str | None:
    """Least connections from the daemon's kept state; None before it has one."""
    kept = api.kept() if api.kept is not None else None
    return None if kept is None else pick_kept(asked, kept)


async def _on_daemon(api: Api, fn: Callable[[], Any]) -> Any:
    return fn() if api.in_daemon is None else await api.in_daemon(fn)


NODE = "/api/v1/nodes/{node}"
JOB = "/api/v1/jobs/{job_id}"
ENDPOINTS = (
    Endpoint("GET", "/api/v1/nodes", list_nodes, "read", "every node: state and latest sample"),
    Endpoint("GET", NODE, get_node, "read", "one node in full", answers={404: "unknown node"}),
    Endpoint(
        "GET",
        f"{NODE}/history",
        node_history,
        "read",
        "one metric of one node over time (since: how far back; step: one point per step)",
        query=("metric", "since", "step", "agg", "gpu"),
        answers={404: "unknown node", 422: "bad query"},
    ),
    Endpoint(
        "GET",
        "/api/v1/history",
        fleet_history,
        "read",
        "one metric over many nodes, one series per group (by: node, label:KEY or fleet;"
        " nodes: a name glob; label: KEY=VALUE, repeatable; agg: avg, min, max, sum or p95;"
        " gpu: one GPU index, default every GPU; since, step: durations, step 1m or more)",
        query=("metric", "by", "nodes", "label", "agg", "since", "step", "gpu"),
        answers={404: "no node matches", 422: "bad query"},
    ),
    Endpoint(
        "POST",
        f"{NODE}/{{action}}",
        power_action,
        "write",
        "sleep, wake or clear a node (action); 202 until the coordinator answers",
        body="PowerRequest",
        answers={202: "queued, no answer yet", 404: "unknown node"},
    ),
    Endpoint(
        "GET",
        "/api/v1/jobs",
        list_jobs,
        "read",
        "jobs, newest first (state: repeatable filter)",
        query=("state", "limit"),
    ),
    Endpoint(
        "POST",
        "/api/v1/jobs",
        submit_job,
        "write",
        "queue a job; answers its id and when it should start and finish",
        body="JobRequest",
        answers={201: "queued", 422: "bad field, or no node could ever run it"},
    ),
    Endpoint("GET", JOB, get_job, "read", "one job and its events", answers={404: "no such job"}),
    Endpoint(
        "POST",
        f"{JOB}/release",
        release_job,
        "write",
        "start a job held for a cheaper (or cleaner) window at the next pass",
        answers={404: "no such job", 409: "not pending"},
    ),
    Endpoint(
        "GET",
        f"{JOB}/logs",
        job_logs,
        "read",
        "the end of a job's stdout and stderr (4 KiB each), kept when it ended (null before)",
        answers={404: "no such job"},
    ),
    Endpoint(
        "POST",
        f"{JOB}/cancel",
        cancel_job,
        "write",
        "cancel a job (at once if pending; else SIGTERM, then SIGKILL)",
        answers={404: "no such job", 409: "it has already ended"},
    ),
    Endpoint(
        "GET",
        "/api/v1/power/events",
        power_events,
        "read",
        "sleeps, wakes, failures and operator requests, oldest first",
        query=("node", "limit"),
    ),
    Endpoint(
        "GET",
        "/api/v1/power/requests/{request_id:int}",
        power_request,
        "read",
        "the coordinator's answer to a power request (null: not yet)",
    ),
    Endpoint(
        "GET",
        "/api/v1/report",
        get_report,
        "read",
        "energy, cost, CO2 and savings (since: the window; limit: jobs listed); by=account|"
        "user|node|job: chargeback rows",
        query=("since", "limit", "by"),
    ),
    Endpoint(
        "GET",
        "/api/v1/fleet/timeline",
        fleet_timeline,
        "read",
        "the fleet over time: nodes by state (busy, idle, asleep, waking, failed, offline),"
        " power measured and estimated (W), queued GPUs and CPUs, energy used and saved, and"
        " each node's periods, jobs and power events (since, step: durations; shared answers"
        " at most 30 s old)",
        query=("since", "step"),
        answers={422: "bad query"},
    ),
    Endpoint("GET", "/api/v1/status", get_status, "read", "the coordinator's figures"),
    Endpoint(
        "POST",
        "/api/v1/pick",
        pick,
        "read",
        "the node a stateless request should go to now (409: none)",
        body="PickRequest",
        answers={409: "no node fits"},
    ),
)
