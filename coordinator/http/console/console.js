// The dormouse console: reads /api/v1/ with the token given in the URL's #token=... (kept in
// sessionStorage, never sent in a URL) or typed in; live through the /api/v1/stream events.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: null, node: null, fleet: null, timeline: null, lanes: null };

function takeToken() {
  const match = location.hash.match(/token=([^&]+)/);
  if (match) {
    sessionStorage.setItem("dormouse-token", decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname);
  }
  state.token = sessionStorage.getItem("dormouse-token");
}

function headers() {
  return state.token ? { Authorization: "Bearer " + state.token } : {};
}

async function api(path) {
  const response = await fetch(path, { headers: headers() });
  if (response.status === 401 || response.status === 403) {
    const body = await response.json();
    askToken(body.reason);
    throw new Error("unauthorised");
  }
  if (!response.ok) throw new Error(path + ": " + response.status);
  return response.json();
}

function askToken(why) {
  $("login").hidden = false;
  $("login-why").textContent = why || "";
}

function cell(row, value, className) {
  const td = document.createElement("td");
  td.textContent = value === null || value === undefined ? "" : String(value);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

const UNKNOWN = "\u2013"; // an en dash: a value not known, never shown as 0
const pad = (n) => String(n).padStart(2, "0");
const fmt = {
  num: (v, digits = 1) => (typeof v === "number" ? v.toFixed(digits) : UNKNOWN),
  // ISO-8601 in the browser's zone, 24 h, as the CLI prints times
  time: (ts) => {
    if (!ts) return UNKNOWN;
    const d = new Date(ts * 1000);
    const day = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate());
    return day + " " + pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  },
  ago: (ts) => (ts ? Math.max(0, Math.round(Date.now() / 1000 - ts)) + " s ago" : "never"),
  bytes: (b) => (typeof b === "number" ? (b / 2 ** 30).toFixed(1) + " GiB" : UNKNOWN),
  dur: (s) => {
    if (typeof s !== "number") return UNKNOWN;
    if (s < 60) return Math.round(s) + " s";
    return s < 3600 ? Math.round(s / 60) + " min" : (s / 3600).toFixed(1) + " h";
  },
};

const REFUSING = ["no key", "other key"]; // the node's `commands`: placement passes it by

function renderFleet(nodes) {
  const body = $("fleet").tBodies[0];
  const rows = nodes.map((n) => {
    const tr = document.createElement("tr");
    tr.dataset.node = n.node;
    tr.dataset.state = n.state;
    tr.id = "node-" + n.node;
    tr.tabIndex = 0;
    cell(tr, n.node);
    const states = cell(tr, "");
    states.appendChild(badge(n.state));
    if (REFUSING.includes(n.commands)) {
      const refusing = badge(n.commands);
      refusing.className = "state state-refusing";
      refusing.title = "its agent cannot verify the coordinator's commands: no job is placed here";
      states.appendChild(refusing);
    }
    cell(tr, fmt.num(n.cpu_util_pct), "num");
    cell(tr, n.mem_total_bytes ? fmt.bytes(n.mem_used_bytes) + " / " + fmt.bytes(n.mem_total_bytes) : UNKNOWN, "num");
    cell(tr, n.gpus ?? UNKNOWN, "num");
    cell(tr, fmt.num(n.gpu_util_pct), "num");
    cell(tr, fmt.num(n.power_w), "num");
    cell(tr, n.jobs ?? UNKNOWN, "num");
    cell(tr, fmt.ago(n.last_seen));
    tr.addEventListener("click", () => openNode(n.node));
    tr.addEventListener("keydown", (event) => event.key === "Enter" && openNode(n.node));
    return tr;
  });
  body.replaceChildren(...rows);
  const counts = {};
  nodes.forEach((n) => (counts[n.state] = (counts[n.state] || 0) + 1));
  $("fleet-count").textContent = Object.entries(counts).map(([s, c]) => c + " " + s).join(", ");
}

function badge(text) {
  const span = document.createElement("span");
  span.className = "state state-" + text;
  span.textContent = text;
  return span;
}

// Whether the job met its deadline, or, before it ends, its slack: the deadline less when it
// should end (now plus its estimate if waiting, its start plus the estimate if running).
function slack(j, now) {
  if (!j.deadline) return UNKNOWN;
  if (j.deadline_met !== null && j.deadline_met !== undefined) return j.deadline_met ? "met" : "MISSED";
  if (!["pending", "placed", "running"].includes(j.state)) return UNKNOWN;
  const end = (j.started || now) + (j.runtime_s || 0);
  const left = j.deadline - end;
  return left >= 0 ? "slack " + fmt.dur(left) : "late by " + fmt.dur(-left);
}

function renderJobs(jobs, now) {
  const rows = jobs.map((j) => {
    const tr = document.createElement("tr");
    tr.dataset.job = j.id;
    tr.id = "job-" + j.id;
    cell(tr, j.id);
    cell(tr, j.name);
    cell(tr, j.account || UNKNOWN);
    const shown = j.held ? j.held : j.wasteful_since ? j.state + " (idle GPUs)" : j.state;
    cell(tr, shown, "job-" + (j.held ? "held" : j.state));
    cell(tr, j.node || UNKNOWN);
    cell(tr, fmt.time(j.submitted));
    cell(tr, fmt.dur(j.runtime_s), "num");
    cell(tr, fmt.time(j.deadline));
    const met = slack(j, now);
    cell(tr, met, met === "MISSED" || met.startsWith("late") ? "missed" : "");
    return tr;
  });
  $("queue").tBodies[0].replaceChildren(...rows);
  const waiting = jobs.filter((j) => j.state === "pending").length;
  const held = jobs.filter((j) => j.held).length;
  const running = jobs.filter((j) => j.state === "running").length;
  $("queue-count").textContent = waiting + " pending" + (held ? " (" + held + " held)" : "") + ", " + running + " running";
}

function renderEvents(events) {
  const rows = events.slice().reverse().map((e) => {
    const tr = document.createElement("tr");
    cell(tr, fmt.time(e.time));
    cell(tr, e.node);
    cell(tr, e.kind);
    cell(tr, e.reason);
    return tr;
  });
  $("events").tBodies[0].replaceChildren(...rows);
}

function render(fleet) {
  state.fleet = fleet;
  renderFleet(fleet.nodes);
  renderJobs(fleet.jobs, fleet.time || Date.now() / 1000);
  renderEvents(fleet.events);
  if (!performance.getEntriesByName("fleet-rendered").length) performance.mark("fleet-rendered");
  const awake = fleet.nodes.filter((n) => n.state === "online").length;
  $("summary").textContent = fleet.nodes.length + " nodes, " + awake + " awake, " + power(fleet.nodes);
}

// The fleet's measured draw: never "0 W" for nodes without a sensor, and how many it covers.
function power(nodes) {
  const measured = nodes.filter((n) => typeof n.power_w === "number");
  if (!measured.length) return "power " + UNKNOWN + " (no node measures it)";
  const watts = measured.reduce((sum, n) => sum + n.power_w, 0).toFixed(0) + " W";
  return measured.length === nodes.length ? watts : watts + " (" + measured.length + " of " + nodes.length + " nodes measured)";
}

const WINDOW_LABEL = { "1h": "the last hour", "6h": "the last 6 h", "1d": "the last day", "7d": "the last 7 days" };

// The report for the chosen window: read when the page opens and when the window changes,
// never on a timer (the fleet chart's energy figures follow the polls for free).
async function energy() {
  const since = $("window").value;
  const report = await api("/api/v1/report?since=" + since + "&limit=1");
  const t = report.totals;
  const tr = document.createElement("tr");
  cell(tr, WINDOW_LABEL[since]);
  cell(tr, fmt.num(t.kwh, 3), "num");
  cell(tr, fmt.num(t.cost, 2), "num");
  cell(tr, fmt.num(t.saved_kwh, 3) + " kWh (" + fmt.num(t.saved_cost, 2) + ")", "num");
  cell(tr, fmt.num(t.co2_kg, 3), "num");
  $("energy").tBodies[0].replaceChildren(tr);
  $("energy-window").textContent = "at " + fmt.time(Date.now() / 1000);
}

const STATE_SERIES = [
  ["busy", "online busy"], ["idle", "online idle"], ["asleep", "asleep"],
  ["waking", "waking"], ["failed", "failed"], ["offline", "offline"],
];

// The front page: nodes by state, power measured and estimated, queued demand, energy.
async function timeline() {
  const since = $("window").value;
  state.timeline = await api("/api/v1/fleet/timeline?since=" + since);
  drawTimeline(state.timeline);
  if (state.node) nodeTables(state.node);
}

function drawTimeline(data) {
  const since = $("window").value;
  const { drawChart } = window.DormouseChart;
  const base = { times: data.times, step: data.step_s };
  drawChart($("states-chart"), {
    ...base,
    unit: "nodes",
    series: STATE_SERIES.map(([name, label]) => ({ name, label, values: data.states[name], stack: true, css: "state-" + name })),
  }, $("states-readout"));
  drawChart($("power-chart"), {
    ...base,
    unit: "W",
    empty: "no power in this window",
    series: [
      { name: "measured", label: "measured", values: data.power_w.measured, stack: true, css: "measured" },
      { name: "estimated", label: "estimated", values: data.power_w.estimated, stack: true, dashed: true, css: "estimated" },
    ],
  }, $("power-readout"));
  drawChart($("demand-chart"), {
    ...base,
    unit: "asked",
    series: [
      { name: "gpus", label: "GPUs", values: data.demand.gpus, css: "gpus" },
      { name: "cpus", label: "CPUs", values: data.demand.cpus, css: "cpus" },
    ],
  }, $("demand-readout"));
  const e = data.energy;
  const share = data.lanes.length ? data.measuring + " of " + data.lanes.length + " nodes measure power" : "no nodes yet";
  $("overview-figures").textContent =
    WINDOW_LABEL[since] + ": " + e.used_kwh.toFixed(2) + " kWh used, " + e.saved_kwh.toFixed(2) +
    " kWh saved by sleeping (" + share + "; the rest at " + e.idle_power_w + " W awake, " + e.sleep_power_w + " W asleep)";
  const started = performance.now();
  state.lanes.show(data.lanes, data.start, data.end);
  $("lanes-count").textContent = data.lanes.length + " nodes";
  if (!performance.getEntriesByName("timeline-rendered").length) {
    performance.mark("timeline-rendered");
    $("lanes").dataset.renderMs = (performance.now() - started).toFixed(1);
  }
}

async function openNode(name) {
  state.node = name;
  $("node-panel").hidden = false;
  $("node-title").textContent = name;
  nodeTables(name);
  const [found] = await Promise.all([api("/api/v1/nodes/" + encodeURIComponent(name)), nodeChart(name)]);
  const n = found.node;
  const facts = [
    ["state", n.state + " since " + fmt.time(n.state_since)],
    ["CPU", fmt.num(n.cpu_util_pct) + " %"],
    ["memory", n.mem_total_bytes ? fmt.bytes(n.mem_used_bytes) + " / " + fmt.bytes(n.mem_total_bytes) : UNKNOWN],
    ["power", typeof n.power_w === "number" ? n.power_w.toFixed(0) + " W" : UNKNOWN + " (no sensor)"],
    ["wakes", n.wakes_measured ? n.wakes_measured + " measured, p50 " + fmt.dur(n.wake_p50_s) + ", p95 " + fmt.dur(n.wake_p95_s) : "none measured"],
    ["last seen", fmt.time(n.last_seen)],
  ];
  $("node-facts").replaceChildren(...facts.flatMap(([k, v]) => {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    return [dt, dd];
  }));
  $("node-gpus").tBodies[0].replaceChildren(...(n.gpu_health || []).map((g) => {
    const tr = document.createElement("tr");
    cell(tr, g.index);
    cell(tr, g.health, "health-" + g.health);
    cell(tr, g.reason || UNKNOWN);
    cell(tr, g.drained ? "yes: " + (g.drain_reason || "") : "no");
    return tr;
  }));
  $("node-panel").scrollIntoView({ block: "nearest" });
}

// The node's jobs and power events in the window, from its lane.
function nodeTables(name) {
  const lane = state.timeline && state.timeline.lanes.find((l) => l.node === name);
  const jobs = lane ? lane.jobs : [];
  $("node-jobs").tBodies[0].replaceChildren(...jobs.map(([id, jobName, a, b, jobState]) => {
    const tr = document.createElement("tr");
    cell(tr, id);
    cell(tr, jobName);
    cell(tr, jobState);
    cell(tr, fmt.time(a));
    cell(tr, b === null ? "running" : fmt.time(b));
    return tr;
  }));
  const events = lane ? lane.events.slice().reverse() : [];
  $("node-events").tBodies[0].replaceChildren(...events.map(([ts, kind, reason]) => {
    const tr = document.createElement("tr");
    cell(tr, fmt.time(ts));
    cell(tr, kind);
    cell(tr, reason);
    return tr;
  }));
}

const STEPS = { "1h": "1m", "6h": "5m", "1d": "15m", "7d": "2h" };
const UNITS = { m: 60, h: 3600 };

// One metric of the node on the window's steps: a step with no samples (asleep) is a gap.
async function nodeChart(name) {
  const metric = $("metric").value;
  const since = $("window").value;
  const step = STEPS[since];
  const stepS = parseInt(step, 10) * UNITS[step.slice(-1)];
  const data = await api("/api/v1/nodes/" + encodeURIComponent(name) + "/history?metric=" + metric + "&since=" + since + "&step=" + step);
  const now = Date.now() / 1000;
  const t0 = Math.floor((now - ({ "1h": 3600, "6h": 21600, "1d": 86400, "7d": 604800 })[since]) / stepS) * stepS;
  const times = [];
  for (let t = t0; t < now; t += stepS) times.push(t);
  const values = times.map(() => null);
  for (const p of data.points) {
    const i = Math.round((p.ts - t0) / stepS);
    if (i >= 0 && i < values.length && typeof p.value === "number") values[i] = p.value;
  }
  window.DormouseChart.drawChart($("node-chart"), {
    times,
    step: stepS,
    unit: data.unit || "",
    empty: "no " + metric + " in this window",
    series: [{ name: metric, label: metric, values, css: "metric" }],
  }, $("node-readout"));
}

async function listen() {
  // Server-sent events read through fetch, so the token goes in a header, not the URL.
  for (;;) {
    try {
      const response = await fetch("/api/v1/stream", { headers: headers() });
      if (response.status === 401 || response.status === 403) {
        askToken((await response.json()).reason);
        return;
      }
      $("live").className = "live on";
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          dispatch(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (error) {
      // the coordinator restarted or the network dropped: try again below
    }
    $("live").className = "live off";
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

function dispatch(block) {
  let name = "message", data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data += line.slice(5).trim();
  }
  if (name === "fleet" && data) render(JSON.parse(data));
  else if (name === "changes" && data && state.fleet) render(merged(state.fleet, JSON.parse(data)));
}

// The stream sends only what changed after its first event: nodes' states and the queue
// each second, nodes' changed summaries and when each was last heard from every 30 s.
function merged(fleet, update) {
  const nodes = new Map(fleet.nodes.map((n) => [n.node, n]));
  for (const n of update.nodes || []) nodes.set(n.node, { ...n, last_seen: n.last_seen ?? nodes.get(n.node)?.last_seen });
  for (const gone of update.gone || []) nodes.delete(gone);
  for (const [name, nodeState] of Object.entries(update.states || {})) {
    if (nodes.has(name)) nodes.set(name, { ...nodes.get(name), state: nodeState });
  }
  for (const [name, seen] of Object.entries(update.seen || {})) {
    if (nodes.has(name)) nodes.get(name).last_seen = seen;
  }
  const list = [...nodes.values()].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  return { nodes: list, jobs: update.jobs || fleet.jobs, events: update.events || fleet.events, time: update.time };
}

const POLL_MS = 60000; // the timeline's answers are shared and at most 30 s old

function start() {
  takeToken();
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("dormouse-token", $("token").value.trim());
    location.reload();
  });
  state.lanes = window.DormouseLanes.laneView($("lanes"), { onOpen: openNode, tip: $("lane-tip") });
  const quiet = (promise) => promise.catch(() => {});
  $("window").addEventListener("change", () => {
    quiet(timeline());
    quiet(energy());
    if (state.node) quiet(nodeChart(state.node));
  });
  $("metric").addEventListener("change", () => state.node && quiet(nodeChart(state.node)));
  $("node-close").addEventListener("click", () => {
    state.node = null;
    $("node-panel").hidden = true;
  });
  window.addEventListener("resize", () => state.timeline && drawTimeline(state.timeline));
  quiet(timeline());
  quiet(energy());
  setInterval(() => quiet(timeline()), POLL_MS);
  listen();
}

document.addEventListener("DOMContentLoaded", start);
