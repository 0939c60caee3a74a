// The dormouse console: reads /api/v1/ with the token given in the URL's #token=... (kept in
// sessionStorage, never sent in a URL) or typed in; live through the /api/v1/stream events.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: null, chartNode: null, fleet: null };

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
    cell(tr, n.gpus ?? "", "num");
    cell(tr, fmt.num(n.gpu_util_pct), "num");
    cell(tr, fmt.num(n.power_w), "num");
    cell(tr, n.jobs ?? "", "num");
    cell(tr, fmt.ago(n.last_seen));
    tr.addEventListener("click", () => chart(n.node));
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

function renderJobs(jobs) {
  const rows = jobs.map((j) => {
    const tr = document.createElement("tr");
    tr.dataset.job = j.id;
    tr.id = "job-" + j.id;
    cell(tr, j.id);
    cell(tr, j.name);
    cell(tr, j.account || UNKNOWN);
    cell(tr, j.wasteful_since ? j.state + " (idle GPUs)" : j.state, "job-" + j.state);
    cell(tr, j.node);
    cell(tr, fmt.time(j.submitted));
    cell(tr, fmt.dur(j.runtime_s), "num");
    cell(tr, fmt.time(j.deadline));
    cell(tr, j.deadline_met === null ? UNKNOWN : j.deadline_met ? "yes" : "MISSED");
    return tr;
  });
  $("queue").tBodies[0].replaceChildren(...rows);
  const waiting = jobs.filter((j) => j.state === "pending").length;
  const running = jobs.filter((j) => j.state === "running").length;
  $("queue-count").textContent = waiting + " pending, " + running + " running";
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
  renderJobs(fleet.jobs);
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

async function energy() {
  const rows = [];
  for (const [label, since] of [["today", "1d"], ["this week", "7d"]]) {
    const report = await api("/api/v1/report?since=" + since + "&limit=1");
    const t = report.totals;
    const tr = document.createElement("tr");
    cell(tr, label);
    cell(tr, fmt.num(t.kwh, 3), "num");
    cell(tr, fmt.num(t.cost, 2), "num");
    cell(tr, fmt.num(t.saved_kwh, 3) + " kWh (" + fmt.num(t.saved_cost, 2) + ")", "num");
    cell(tr, fmt.num(t.co2_kg, 3), "num");
    rows.push(tr);
  }
  $("energy").tBodies[0].replaceChildren(...rows);
}

const STEPS = { "1h": "1m", "6h": "5m", "1d": "15m", "7d": "2h" };

// The fleet's history (node null: summed power, averaged utilisation) or one node's.
async function chart(node) {
  state.chartNode = node;
  const metric = $("metric").value;
  const since = $("window").value;
  const step = STEPS[since];
  const query = "metric=" + metric + "&since=" + since + "&step=" + step;
  if (node === null) {
    const agg = metric === "power_w" || metric === "mem_used_bytes" ? "sum" : "avg";
    const data = await api("/api/v1/history?by=fleet&agg=" + agg + "&" + query);
    const points = data.series.length ? data.series[0].points : [];
    $("chart-title").textContent =
      "fleet: " + metric + " (" + data.unit + ", " + agg + " over nodes), " + data.tier + " tier";
    draw(points.map(([ts, value]) => ({ ts, value })), data.step_s);
    return;
  }
  const data = await api("/api/v1/nodes/" + encodeURIComponent(node) + "/history?" + query);
  $("chart-title").textContent = node + ": " + metric + " (" + data.unit + "), " + data.tier + " tier";
  draw(data.points, stepSeconds(step));
}

function stepSeconds(step) {
  return parseInt(step, 10) * { m: 60, h: 3600 }[step.slice(-1)];
}

// One polyline per run of points: a step with no samples (a node asleep) breaks the line.
function draw(points, stepS) {
  const svg = $("chart");
  const ns = "http://www.w3.org/2000/svg";
  const known = points.filter((p) => typeof p.value === "number");
  svg.replaceChildren();
  if (known.length === 0) {
    const text = document.createElementNS(ns, "text");
    text.setAttribute("x", "10");
    text.setAttribute("y", "20");
    text.textContent = "no data in this window";
    svg.appendChild(text);
    return;
  }
  const t0 = known[0].ts, t1 = known[known.length - 1].ts;
  const top = Math.max(...known.map((p) => p.value), 1e-9);
  const runs = [[known[0]]];
  for (let i = 1; i < known.length; i++) {
    if (known[i].ts - known[i - 1].ts > stepS * 1.5) runs.push([]);
    runs[runs.length - 1].push(known[i]);
  }
  for (const run of runs) {
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", run.map((p) => {
      const x = ((p.ts - t0) / Math.max(t1 - t0, 1)) * 590 + 5;
      const y = 175 - (p.value / top) * 160;
      return x.toFixed(1) + "," + y.toFixed(1);
    }).join(" "));
    svg.appendChild(line);
  }
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", "5");
  label.setAttribute("y", "12");
  label.textContent = "max " + top.toPrecision(4);
  svg.appendChild(label);
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
}

function start() {
  takeToken();
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("dormouse-token", $("token").value.trim());
    location.reload();
  });
  for (const id of ["metric", "window"]) {
    $(id).addEventListener("change", () => chart(state.chartNode).catch(() => {}));
  }
  $("chart-fleet").addEventListener("click", () => chart(null).catch(() => {}));
  chart(null).catch(() => {});
  energy().catch(() => {});
  setInterval(() => energy().catch(() => {}), 60000);
  listen();
}

document.addEventListener("DOMContentLoaded", start);
