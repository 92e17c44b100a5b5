// Live dashboard of the activity-tracking example: polls /api/dashboard once a second and
// draws the charts on canvases; polls /metrics (the Prometheus text) and
// /api/topology/stores once a second for the runtime panel and the topology picture
// (/api/topology.svg, drawn by the app). No external libraries.
"use strict";

const COLORS = ["#4fb3ff", "#3ddc97", "#ffb86b", "#c792ea", "#ff6b6b", "#f7d154", "#5ee0e0", "#a3be8c"];
const rateHistory = [];
let updates = 0;

function fmt(n) {
  if (n === null || n === undefined) return "–";
  if (n >= 1e6) return (n / 1e6).toFixed(2) + "M";
  if (n >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return Math.round(n).toLocaleString();
}

function clock(ms) {
  return new Date(ms).toISOString().substring(11, 16);
}

function clockSeconds(ms) {
  return new Date(ms).toISOString().substring(11, 19);
}

// Sets up a canvas for crisp drawing at the device's pixel ratio, keeping the aspect ratio
// of its width/height attributes; returns its context and CSS size.
function prepare(canvas) {
  if (!canvas.dataset.aspect) canvas.dataset.aspect = String(canvas.height / canvas.width);
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width;
  const h = Math.round(w * Number(canvas.dataset.aspect));
  canvas.width = Math.round(w * ratio);
  canvas.height = Math.round(h * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return { ctx, w, h };
}

function axes(ctx, w, h, pad, maxY, labelsX) {
  ctx.strokeStyle = "#263048";
  ctx.fillStyle = "#8b93a7";
  ctx.font = "12px sans-serif";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = pad.t + (h - pad.t - pad.b) * (1 - i / 4);
    ctx.beginPath();
    ctx.moveTo(pad.l, y);
    ctx.lineTo(w - pad.r, y);
    ctx.stroke();
    ctx.fillText(fmt(maxY * i / 4), 4, y + 4);
  }
  const n = labelsX.length;
  const step = Math.max(1, Math.ceil(n / 8));
  labelsX.forEach((label, i) => {
    if (i % step !== 0) return;
    const x = pad.l + (w - pad.l - pad.r) * (n <= 1 ? 0.5 : i / (n - 1));
    ctx.fillText(label, Math.min(x - 14, w - pad.r - 34), h - 6);
  });
}

function lineChart(canvas, labels, series) {
  const { ctx, w, h } = prepare(canvas);
  const pad = { l: 48, r: 12, t: 10, b: 24 };
  // A multiple of 4 (at least 4), so that the four grid lines have whole-number labels.
  const maxY = Math.max(4, Math.ceil(Math.max(0, ...series.flatMap(s => s.values)) * 1.1 / 4) * 4);
  axes(ctx, w, h, pad, maxY, labels);
  const n = labels.length;
  series.forEach((s, si) => {
    ctx.strokeStyle = s.color || COLORS[si % COLORS.length];
    ctx.lineWidth = 2;
    ctx.beginPath();
    s.values.forEach((v, i) => {
      const x = pad.l + (w - pad.l - pad.r) * (n <= 1 ? 0.5 : i / (n - 1));
      const y = pad.t + (h - pad.t - pad.b) * (1 - v / maxY);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
  });
}

function barChart(canvas, items) {
  const { ctx, w, h } = prepare(canvas);
  ctx.font = "12px sans-serif";
  // Room on the right for the longest value text.
  const textW = Math.max(0, ...items.map(i => ctx.measureText(i.text).width));
  const pad = { l: 110, r: Math.min(w / 2, Math.max(60, textW + 12)), t: 6, b: 6 };
  if (items.length === 0) {
    ctx.fillStyle = "#8b93a7";
    ctx.fillText("waiting for the first window…", pad.l, h / 2);
    return;
  }
  const max = Math.max(0.0001, ...items.map(i => i.value));
  const rowH = Math.min(32, (h - pad.t - pad.b) / items.length);
  items.forEach((item, i) => {
    const y = pad.t + i * rowH;
    const bw = (w - pad.l - pad.r) * item.value / max;
    ctx.fillStyle = COLORS[i % COLORS.length];
    ctx.fillRect(pad.l, y + rowH * 0.15, bw, rowH * 0.7);
    ctx.fillStyle = "#e6e9f0";
    ctx.fillText(item.label, 6, y + rowH / 2 + 4);
    ctx.fillText(item.text, pad.l + bw + 6, y + rowH / 2 + 4);
  });
}

// "(12:03–12:04)", and whether a click-through window is settled.
function windowLabel(w) {
  if (w.window_start === null) return "";
  const span = `(${clock(w.window_start)}–${clock(w.window_end)})`;
  if (w.settled === undefined) return span;
  return w.settled ? `${span} final` : `${span} so far: views have 30 min to be clicked`;
}

// A click-through bar: clicked views over all the window's views, resolved or pending.
function ctrBar(label, s) {
  const all = s.views + s.pending_views;
  const share = all > 0 ? s.clicked_views / all : 0;
  const pending = s.pending_views > 0 ? ` · ${fmt(s.pending_views)} pending` : "";
  return { label, value: share, text: `${(share * 100).toFixed(1)}% (${s.clicked_views}/${fmt(all)}${pending})` };
}

// What a click-through chart drew, for the browser test: label=clicked/resolved+pending.
function drawnCtr(key) {
  return s => `${s[key]}=${s.clicked_views}/${s.views}+${s.pending_views}`;
}

function render(d) {
  const s = d.status;
  document.getElementById("kpi-rate").textContent = fmt(s.events_per_sec);
  document.getElementById("kpi-lag").textContent = fmt(s.lag);
  document.getElementById("kpi-processed").textContent = fmt(s.processed);
  document.getElementById("kpi-windows").textContent = fmt(s.windows_closed);
  const dropped = s.dropped_records + s.skipped_records;
  const droppedEl = document.getElementById("kpi-dropped");
  droppedEl.textContent = fmt(dropped);
  droppedEl.classList.toggle("warn", dropped > 0);
  document.getElementById("kpi-alerts").textContent = fmt(d.alerts.length);

  const labels = d.timeline.starts.map(clock);
  const series = d.timeline.series.map((p, i) => ({ name: p.page, values: p.counts, color: COLORS[i % COLORS.length] }));
  const viewsChart = document.getElementById("views-chart");
  lineChart(viewsChart, labels, series);
  // What each chart draws, as text: read by the browser test to check charts against the API.
  viewsChart.dataset.drawn = series.map(p => `${p.name}=${p.values.join(" ")}`).join(";");
  const legend = document.getElementById("views-legend");
  legend.innerHTML = "";
  series.forEach(p => {
    const span = document.createElement("span");
    span.style.setProperty("--swatch", p.color);
    span.textContent = p.name;
    legend.appendChild(span);
  });

  // Click-through rates: clicked views / views of a window, final once the window is
  // settled (every view's 30-minute click window has passed); before, the share of the
  // window's views clicked so far (pending views count as unclicked: a lower bound).
  const ctr = d.ctr;
  document.getElementById("ctr-window").textContent = windowLabel(ctr);
  const ctrChart = document.getElementById("ctr-chart");
  ctrChart.dataset.drawn = ctr.pages.map(drawnCtr("page")).join(";");
  barChart(ctrChart, ctr.pages.map(p => ctrBar(p.page, p)));

  const countries = d.countries;
  document.getElementById("country-window").textContent = windowLabel(countries);
  const countryChart = document.getElementById("country-chart");
  countryChart.dataset.drawn = countries.countries.map(([c, n]) => `${c}=${n}`).join(";");
  barChart(countryChart, countries.countries.map(([c, n]) => ({ label: c, value: n, text: fmt(n) })));

  const categories = d.categories;
  document.getElementById("category-window").textContent = windowLabel(categories);
  const categoryChart = document.getElementById("category-chart");
  categoryChart.dataset.drawn = categories.categories.map(drawnCtr("category")).join(";");
  barChart(categoryChart, categories.categories.map(c => ctrBar(c.category, c)));

  rateHistory.push(s.events_per_sec);
  if (rateHistory.length > 60) rateHistory.shift();
  lineChart(document.getElementById("rate-chart"), rateHistory.map((_, i) => `${i - rateHistory.length + 1}s`),
    [{ name: "events/s", values: rateHistory, color: "#3ddc97" }]);

  const body = document.querySelector("#alerts tbody");
  body.innerHTML = "";
  d.alerts.slice(0, 12).forEach(a => {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td></td><td>${clockSeconds(a.start)}–${clockSeconds(a.end)}</td><td class="num">${a.clicks}</td>`;
    tr.firstChild.textContent = a.user;
    body.appendChild(tr);
  });
  document.getElementById("footer").textContent =
    `instance ${s.instance} · state ${s.state} · updated ${new Date().toLocaleTimeString()}`;
}

async function tick() {
  const live = document.getElementById("live");
  try {
    const res = await fetch("/api/dashboard", { cache: "no-store" });
    if (!res.ok) throw new Error(res.status);
    const d = await res.json();
    render(d);
    window.lastDashboard = d;
    updates += 1;
    document.body.dataset.updates = String(updates);
    live.classList.remove("stale");
    live.textContent = "● live";
  } catch (e) {
    live.classList.add("stale");
    live.textContent = "● reconnecting";
  }
  setTimeout(tick, 1000);
}

// ---- Runtime metrics: the Prometheus text of /metrics ----

// A sample value: a number, or NaN/+Inf/-Inf as Prometheus writes them.
function sampleValue(text) {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  return Number(text);
}

// The samples of a Prometheus text exposition: [{name, labels, value}]. Comments (# HELP,
// # TYPE) and timestamps are skipped; label values are unescaped (\\, \", \n).
function parsePrometheus(text) {
  const samples = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const labels = {};
    let name;
    let rest;
    const brace = line.indexOf("{");
    const space = line.search(/\s/);
    if (brace >= 0 && (space < 0 || brace < space)) {
      name = line.slice(0, brace);
      let i = brace + 1;
      while (i < line.length && line[i] !== "}") {
        const eq = line.indexOf("=", i);
        if (eq < 0) break;
        const key = line.slice(i, eq).trim();
        let j = eq + 1;
        if (line[j] === '"') j += 1;
        let value = "";
        while (j < line.length && line[j] !== '"') {
          if (line[j] === "\\" && j + 1 < line.length) {
            value += line[j + 1] === "n" ? "\n" : line[j + 1];
            j += 2;
          } else {
            value += line[j];
            j += 1;
          }
        }
        labels[key] = value;
        i = j + 1;
        while (line[i] === "," || line[i] === " ") i += 1;
      }
      rest = line.slice(i + 1).trim();
    } else {
      name = space < 0 ? line : line.slice(0, space);
      rest = space < 0 ? "" : line.slice(space + 1).trim();
    }
    samples.push({ name, labels, value: sampleValue(rest.split(/\s+/)[0]) });
  }
  return samples;
}

const M = {
  taskLag: "kafka_streams_stream_task_records_lag",
  partitionLag: "kafka_streams_stream_task_input_records_lag",
  e2eAvg: "kafka_streams_stream_task_record_e2e_latency_avg",
  e2eMax: "kafka_streams_stream_task_record_e2e_latency_max",
  cacheHit: "kafka_streams_record_cache_hit_ratio_avg",
  threadRate: "kafka_streams_stream_thread_process_rate",
  dropped: "kafka_streams_stream_task_dropped_records_total",
  droppedByReason: "kafka_streams_stream_task_dropped_records_by_reason_total",
  taskRate: "kafka_streams_stream_task_process_rate",
  taskTotal: "kafka_streams_stream_task_process_total",
  nodeRate: "kafka_streams_stream_processor_node_process_rate",
};

// The panel's figures from the samples; null where the metric is absent.
function runtimeFigures(samples) {
  const of = name => samples.filter(s => s.name === name && Number.isFinite(s.value));
  const sum = list => list.length ? list.reduce((a, s) => a + s.value, 0) : null;
  const mean = list => list.length ? sum(list) / list.length : null;
  const max = list => list.length ? Math.max(...list.map(s => s.value)) : null;
  const byReason = {};
  of(M.droppedByReason).forEach(s => {
    const reason = s.labels.reason || "?";
    byReason[reason] = (byReason[reason] || 0) + s.value;
  });
  return {
    lag: sum(of(M.taskLag)),
    partitionLagMax: max(of(M.partitionLag)),
    e2eAvg: mean(of(M.e2eAvg)),
    e2eMax: max(of(M.e2eMax)),
    cacheHit: mean(of(M.cacheHit)),
    cacheSeries: of(M.cacheHit).length,
    processRate: sum(of(M.threadRate)),
    dropped: sum(of(M.dropped)),
    droppedByReason: byReason,
  };
}

function ms(v) {
  if (v === null) return "—";
  return v >= 1000 ? (v / 1000).toFixed(v >= 10000 ? 0 : 1) + " s" : Math.round(v) + " ms";
}

// Sets a figure: its text, and its raw value in data-value (read by the browser test).
function figure(id, value, text) {
  const el = document.getElementById(id);
  el.textContent = value === null ? "—" : text;
  el.dataset.value = value === null ? "" : String(value);
  return el;
}

function renderRuntime(f) {
  figure("m-lag", f.lag, fmt(f.lag));
  document.getElementById("m-lag-detail").textContent =
    f.partitionLagMax === null ? "records not processed yet" : `most on one partition: ${fmt(f.partitionLagMax)}`;
  figure("m-e2e-avg", f.e2eAvg, ms(f.e2eAvg));
  figure("m-e2e-max", f.e2eMax, ms(f.e2eMax));
  figure("m-cache-hit", f.cacheHit, f.cacheHit === null ? "" : (f.cacheHit * 100).toFixed(1) + "%");
  document.getElementById("m-cache-detail").textContent = f.cacheHit === null
    ? "recorded at metrics.recording.level=DEBUG"
    : `mean of ${f.cacheSeries} cached stores`;
  figure("m-process-rate", f.processRate, fmt(f.processRate) + "/s");
  const dropped = figure("m-dropped", f.dropped, fmt(f.dropped));
  dropped.classList.toggle("warn", f.dropped > 0);
  const reasons = document.getElementById("m-dropped-reasons");
  reasons.innerHTML = "";
  Object.keys(f.droppedByReason).sort().forEach(reason => {
    const span = document.createElement("span");
    span.dataset.reason = reason;
    span.dataset.value = String(f.droppedByReason[reason]);
    span.textContent = `${reason} ${fmt(f.droppedByReason[reason])}`;
    reasons.appendChild(span);
  });
}

// The live figures on the topology picture: per sub-topology its tasks and records/s, per
// processor its records/s (when the node metric is recorded), per store its entries.
function annotateTopology(samples, stores) {
  const svg = document.querySelector("#topology svg");
  if (!svg) return;
  const tasks = {};
  const rates = {};
  samples.filter(s => s.name === M.taskTotal).forEach(s => {
    const sub = (s.labels.task_id || "").split("_")[0];
    (tasks[sub] = tasks[sub] || new Set()).add(s.labels.task_id);
  });
  samples.filter(s => s.name === M.taskRate && Number.isFinite(s.value)).forEach(s => {
    const sub = (s.labels.task_id || "").split("_")[0];
    rates[sub] = (rates[sub] || 0) + s.value;
  });
  svg.querySelectorAll("g.group[data-subtopology]").forEach(g => {
    const sub = g.dataset.subtopology;
    const n = tasks[sub] ? tasks[sub].size : 0;
    g.dataset.tasks = String(n);
    g.querySelector(".stat").textContent =
      n === 0 ? "no task here" : `${n} task${n === 1 ? "" : "s"} · ${fmt(rates[sub] || 0)}/s`;
  });
  const nodeRates = {};
  samples.filter(s => s.name === M.nodeRate && Number.isFinite(s.value)).forEach(s => {
    const node = s.labels.processor_node_id;
    nodeRates[node] = (nodeRates[node] || 0) + s.value;
  });
  svg.querySelectorAll("g.el[data-id^='node:']").forEach(g => {
    const rate = nodeRates[g.dataset.name];
    const stat = g.querySelector(".stat");
    if (rate === undefined) {
      delete g.dataset.rate;
      stat.textContent = "";
    } else {
      g.dataset.rate = String(rate);
      stat.textContent = `${fmt(rate)}/s`;
    }
  });
  if (stores) {
    svg.querySelectorAll("g.el[data-id^='store:']").forEach(g => {
      const n = stores[g.dataset.name];
      const stat = g.querySelector(".stat");
      if (n === undefined) {
        delete g.dataset.entries;
        stat.textContent = "";
      } else {
        g.dataset.entries = String(n);
        stat.textContent = `${fmt(n)} entries`;
      }
    });
  }
}

let runtimeUpdates = 0;
let storeSizes = null;

async function loadTopology() {
  const box = document.getElementById("topology");
  try {
    const res = await fetch("/api/topology.svg", { cache: "no-store" });
    if (!res.ok) throw new Error(res.status);
    box.innerHTML = await res.text();
  } catch (e) {
    box.textContent = "the topology picture could not be loaded: retrying…";
    setTimeout(loadTopology, 2000);
  }
}

async function tickRuntime() {
  try {
    const [metrics, stores] = await Promise.all([
      fetch("/metrics", { cache: "no-store" }).then(r => r.ok ? r.text() : ""),
      fetch("/api/topology/stores", { cache: "no-store" }).then(r => r.ok ? r.json() : null).catch(() => null),
    ]);
    if (stores) storeSizes = stores.stores;
    const samples = parsePrometheus(metrics);
    renderRuntime(runtimeFigures(samples));
    annotateTopology(samples, storeSizes);
    runtimeUpdates += 1;
    document.body.dataset.runtimeUpdates = String(runtimeUpdates);
    document.getElementById("metrics-age").textContent = `· ${samples.length} samples`;
  } catch (e) {
    document.getElementById("metrics-age").textContent = "· unavailable";
  }
  setTimeout(tickRuntime, 1000);
}

document.getElementById("topology-zoom").addEventListener("click", e => {
  const box = document.getElementById("topology");
  box.classList.toggle("actual");
  e.target.textContent = box.classList.contains("actual") ? "fit to width" : "actual size";
});

tick();
loadTopology().then(tickRuntime);
