// Node lanes: one row per node over the window, its states as coloured periods and its jobs
// as bars, drawn on one canvas for the lanes in view only (virtualised: a thousand nodes
// cost what twenty do), redrawn on scroll. Hover says what was happening; a click, or Enter
// on the lane chosen with the arrow keys, opens the node.
"use strict";

const LANE_H = 20;
const LABEL_W = 130;
const MAX_H = 420; // past this the lanes scroll
const COLOURS = ["busy", "idle", "asleep", "waking", "failed", "offline"];

function laneView(container, { onOpen, tip }) {
  const canvas = container.querySelector("canvas");
  const spacer = container.querySelector("#lanes-spacer");
  const view = { lanes: [], start: 0, end: 1, chosen: -1, drawn: [0, -1] };

  const palette = () => {
    const css = getComputedStyle(container);
    const colour = {};
    for (const s of COLOURS) colour[s] = css.getPropertyValue("--state-" + s).trim() || "#999";
    colour.job = css.getPropertyValue("--job").trim() || "#1e88e5";
    colour.fg = css.getPropertyValue("--fg").trim() || "#222";
    colour.line = css.getPropertyValue("--line").trim() || "#ddd";
    colour.chosen = css.getPropertyValue("--chosen").trim() || "rgba(30,136,229,.18)";
    return colour;
  };

  function draw() {
    const width = container.clientWidth;
    const height = container.clientHeight;
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.width = width + "px";
    canvas.style.height = height + "px";
    canvas.style.top = container.scrollTop + "px";
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const colour = palette();
    const first = Math.floor(container.scrollTop / LANE_H);
    const last = Math.min(view.lanes.length - 1, Math.ceil((container.scrollTop + height) / LANE_H));
    const x = xOf(width);
    ctx.font = "12px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    for (let i = first; i <= last; i++) {
      const lane = view.lanes[i];
      const top = i * LANE_H - container.scrollTop;
      if (i === view.chosen) {
        ctx.fillStyle = colour.chosen;
        ctx.fillRect(0, top, width, LANE_H);
      }
      ctx.fillStyle = colour.fg;
      ctx.fillText(lane.node.length > 18 ? lane.node.slice(0, 17) + "\u2026" : lane.node, 4, top + LANE_H / 2);
      for (const [a, b, state] of lane.periods) {
        ctx.fillStyle = colour[state] || "#999";
        ctx.fillRect(x(a), top + 3, Math.max(1, x(b) - x(a)), LANE_H - 10);
      }
      ctx.fillStyle = colour.job;
      for (const [, , a, b] of lane.jobs) {
        const x0 = x(Math.max(a, view.start)), x1 = x(b === null ? view.end : Math.min(b, view.end));
        if (x1 > x0) ctx.fillRect(x0, top + LANE_H - 6, Math.max(1, x1 - x0), 3);
      }
      ctx.fillStyle = colour.line;
      ctx.fillRect(LABEL_W, top + LANE_H - 1, width - LABEL_W, 1);
    }
    view.drawn = [first, last];
    container.dataset.drawn = first + "-" + last;
  }

  const xOf = (width) => (t) => LABEL_W + ((t - view.start) / (view.end - view.start)) * (width - LABEL_W - 8);

  function at(event) {
    const box = container.getBoundingClientRect();
    const i = Math.floor((event.clientY - box.top + container.scrollTop) / LANE_H);
    const px = event.clientX - box.left;
    const width = container.clientWidth;
    const t = view.start + ((px - LABEL_W) / (width - LABEL_W - 8)) * (view.end - view.start);
    return { lane: view.lanes[i], index: i, t, px };
  }

  function describe(lane, t) {
    const { timeLabel } = window.DormouseChart;
    const lines = [lane.node];
    const period = lane.periods.find(([a, b]) => a <= t && t < b);
    if (period) lines.push(period[2] + " " + timeLabel(period[0], true) + " \u2192 " + timeLabel(period[1], true));
    for (const [id, name, a, b] of lane.jobs) {
      if (a <= t && (b === null || t < b)) lines.push("job " + id + " (" + name + ")");
    }
    const near = (view.end - view.start) / 60;
    for (const [ts, kind, reason] of lane.events) {
      if (Math.abs(ts - t) <= near) lines.push(timeLabel(ts, false) + " " + kind + ": " + reason);
    }
    return lines;
  }

  container.addEventListener("scroll", () => requestAnimationFrame(draw));
  container.addEventListener("mousemove", (event) => {
    const found = at(event);
    if (!found.lane || found.px < LABEL_W) {
      tip.hidden = true;
      return;
    }
    tip.replaceChildren(...describe(found.lane, found.t).map((line) => {
      const div = document.createElement("div");
      div.textContent = line;
      return div;
    }));
    tip.hidden = false;
    const box = container.getBoundingClientRect();
    tip.style.left = Math.min(event.clientX - box.left + 12, box.width - 260) + "px";
    tip.style.top = event.clientY - box.top + container.offsetTop + 14 + "px";
  });
  container.addEventListener("mouseleave", () => (tip.hidden = true));
  container.addEventListener("click", (event) => {
    const found = at(event);
    if (found.lane) onOpen(found.lane.node);
  });
  container.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      const step = event.key === "ArrowDown" ? 1 : -1;
      view.chosen = Math.max(0, Math.min(view.lanes.length - 1, view.chosen + step));
      const top = view.chosen * LANE_H;
      if (top < container.scrollTop) container.scrollTop = top;
      else if (top + LANE_H > container.scrollTop + container.clientHeight) container.scrollTop = top + LANE_H - container.clientHeight;
      draw();
      event.preventDefault();
    } else if (event.key === "Enter" && view.lanes[view.chosen]) {
      onOpen(view.lanes[view.chosen].node);
    }
  });
  window.addEventListener("resize", () => requestAnimationFrame(draw));

  return {
    show(lanes, start, end) {
      Object.assign(view, { lanes, start, end });
      spacer.style.height = lanes.length * LANE_H + "px";
      container.style.height = Math.min(MAX_H, Math.max(LANE_H * 3, lanes.length * LANE_H + 2)) + "px";
      draw();
    },
    view,
  };
}

window.DormouseLanes = { laneView, LANE_H };
