// Time charts for the console, in SVG: a labelled time axis (24 h, the browser's zone), a
// value axis with its unit, stacked areas or lines drawn per step with gaps where a step has
// no value (null), dashed series for estimates, and a hover / arrow-key read-out. Each drawn
// series keeps its values on its path (data-values), so tests read what was drawn.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const MARGIN = { left: 56, right: 12, top: 10, bottom: 22 };

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

const pad2 = (n) => String(n).padStart(2, "0");

// Tick spacing for a span of seconds: about six labels, on round local times.
function timeTicks(t0, t1) {
  const span = t1 - t0;
  const steps = [60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  const every = steps.find((s) => span / s <= 8) || 86400 * Math.ceil(span / 86400 / 8);
  const offset = new Date(t0 * 1000).getTimezoneOffset() * 60; // local midnight, not UTC's
  const ticks = [];
  for (let t = Math.ceil((t0 - offset) / every) * every + offset; t <= t1; t += every) ticks.push(t);
  return { ticks, days: every >= 86400 || span > 86400 };
}

function timeLabel(t, withDay) {
  const d = new Date(t * 1000);
  const hm = pad2(d.getHours()) + ":" + pad2(d.getMinutes());
  return withDay ? pad2(d.getMonth() + 1) + "-" + pad2(d.getDate()) + " " + hm : hm;
}

// Round value-axis steps: 1, 2 or 5 times a power of ten.
function valueTicks(top) {
  if (!(top > 0)) return [0, 1];
  const raw = top / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const ticks = [];
  for (let v = 0; v <= top + step * 0.001; v += step) ticks.push(v);
  if (ticks[ticks.length - 1] < top) ticks.push(ticks[ticks.length - 1] + step);
  return ticks;
}

function short(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "\u2013";
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + " G";
  if (a >= 1e6) return (v / 1e6).toFixed(1) + " M";
  if (a >= 1e4) return (v / 1e3).toFixed(1) + " k";
  return a >= 100 || v === Math.round(v) ? v.toFixed(0) : v.toFixed(a >= 10 ? 1 : 2);
}

// Draw `spec` into `svg`: {times, step, unit, series: [{name, label, values, stack, dashed,
// css}], empty}. Stacked series are summed bottom-up in order; a null breaks a path.
function drawChart(svg, spec, readout) {
  const box = svg.getBoundingClientRect();
  const width = Math.max(320, Math.round(box.width || 600));
  const height = Math.max(120, Math.round(box.height || 180));
  svg.setAttribute("viewBox", "0 0 " + width + " " + height);
  svg.replaceChildren();
  const { times, step } = spec;
  if (!times.length) {
    el("text", { x: MARGIN.left, y: 24, class: "empty" }, svg).textContent = spec.empty || "no data in this window";
    return;
  }
  const t0 = times[0], t1 = times[times.length - 1] + step;
  const base = new Array(times.length).fill(0);
  const drawn = spec.series.map((s) => {
    const low = s.stack ? base.slice() : new Array(times.length).fill(0);
    const high = s.values.map((v, i) => (v === null ? null : low[i] + v));
    if (s.stack) s.values.forEach((v, i) => (base[i] += v || 0));
    return { s, low, high };
  });
  const top = Math.max(1e-9, ...drawn.flatMap((d) => d.high.filter((v) => v !== null)));
  const yTicks = valueTicks(top);
  const yMax = yTicks[yTicks.length - 1];
  const plotW = width - MARGIN.left - MARGIN.right, plotH = height - MARGIN.top - MARGIN.bottom;
  const x = (t) => MARGIN.left + ((t - t0) / (t1 - t0)) * plotW;
  const y = (v) => MARGIN.top + plotH - (v / yMax) * plotH;
  const axes = el("g", { class: "axes" }, svg);
  for (const v of yTicks) {
    el("line", { x1: MARGIN.left, x2: width - MARGIN.right, y1: y(v), y2: y(v), class: "grid" }, axes);
    el("text", { x: MARGIN.left - 4, y: y(v) + 3, "text-anchor": "end" }, axes).textContent = short(v);
  }
  el("text", { x: 4, y: MARGIN.top + 8, class: "unit" }, axes).textContent = spec.unit;
  const { ticks, days } = timeTicks(t0, t1);
  for (const t of ticks) {
    el("line", { x1: x(t), x2: x(t), y1: MARGIN.top + plotH, y2: MARGIN.top + plotH + 4 }, axes);
    el("text", { x: x(t), y: height - 6, "text-anchor": "middle" }, axes).textContent = timeLabel(t, days);
  }
  for (const { s, low, high } of drawn) {
    const path = el("path", { class: "series " + (s.css || ""), "data-series": s.name }, svg);
    path.dataset.values = JSON.stringify(s.values);
    if (s.dashed) path.setAttribute("stroke-dasharray", "5 3");
    path.setAttribute("d", s.stack ? areaPath(times, step, low, high, x, y) : linePath(times, step, high, x, y));
    if (!s.stack) path.setAttribute("fill", "none");
  }
  hover(svg, spec, { x, t0, t1, plotH, readout });
  legend(svg, spec.series);
}

// The series' names and colours, in a line above the chart.
function legend(svg, series) {
  let box = svg.previousElementSibling;
  if (!box || !box.classList.contains("legend")) {
    box = document.createElement("div");
    box.className = "legend";
    svg.parentNode.insertBefore(box, svg);
  }
  box.replaceChildren(...series.map((s) => {
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.className = "swatch sw-" + (s.css || "metric") + (s.dashed ? " dashed" : "");
    item.append(swatch, s.label);
    return item;
  }));
}

// One closed shape per run of known steps, flat across each step.
function areaPath(times, step, low, high, x, y) {
  let d = "";
  let run = [];
  const flush = () => {
    if (!run.length) return;
    const upper = run.map((i) => "L" + x(times[i]).toFixed(1) + "," + y(high[i]).toFixed(1) + "H" + x(times[i] + step).toFixed(1));
    const lower = run.slice().reverse().map((i) => "L" + x(times[i] + step).toFixed(1) + "," + y(low[i]).toFixed(1) + "H" + x(times[i]).toFixed(1));
    d += "M" + x(times[run[0]]).toFixed(1) + "," + y(low[run[0]]).toFixed(1) + upper.join("") + lower.join("") + "Z";
    run = [];
  };
  high.forEach((v, i) => (v === null ? flush() : run.push(i)));
  flush();
  return d;
}

// A line through each step's middle; a step without a value ends the run (a gap).
function linePath(times, step, high, x, y) {
  let d = "";
  let pen = "M";
  high.forEach((v, i) => {
    if (v === null) {
      pen = "M";
      return;
    }
    d += pen + x(times[i] + step / 2).toFixed(1) + "," + y(v).toFixed(1);
    pen = "L";
  });
  return d;
}

function hover(svg, spec, { x, t0, t1, plotH, readout }) {
  const cursor = el("line", { class: "cursor", y1: MARGIN.top, y2: MARGIN.top + plotH, visibility: "hidden" }, svg);
  const show = (i) => {
    if (i < 0 || i >= spec.times.length) return;
    svg.dataset.at = String(i);
    const t = spec.times[i];
    cursor.setAttribute("x1", x(t + spec.step / 2));
    cursor.setAttribute("x2", x(t + spec.step / 2));
    cursor.setAttribute("visibility", "visible");
    if (readout) {
      const parts = spec.series.map((s) => s.label + " " + short(s.values[i]));
      readout.textContent = timeLabel(t, true) + " \u2013 " + parts.join(", ") + " (" + spec.unit + ")";
    }
  };
  svg.onmousemove = (event) => {
    const box = svg.getBoundingClientRect();
    const scale = box.width ? Number(svg.viewBox.baseVal.width) / box.width : 1;
    const px = (event.clientX - box.left) * scale;
    const t = t0 + ((px - MARGIN.left) / (x(t1) - MARGIN.left)) * (t1 - t0);
    show(Math.floor((t - t0) / spec.step));
  };
  svg.onkeydown = (event) => {
    const at = Number(svg.dataset.at || spec.times.length - 1);
    if (event.key === "ArrowLeft") show(at - 1);
    else if (event.key === "ArrowRight") show(at + 1);
    else return;
    event.preventDefault();
  };
}

window.DormouseChart = { drawChart, timeLabel, short };
