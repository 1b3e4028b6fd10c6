/* streamfuse live dashboard: renders the snapshots the server pushes over SSE.
   Message texts are untrusted input: everything is written with textContent, never innerHTML. */
"use strict";

const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];
const SCORE = { positive: 1, bullish: 1, neutral: 0, negative: -1, bearish: -1 };
const $ = (id) => document.getElementById(id);

/* --- tiny DOM helper ------------------------------------------------------------------ */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
function fill(id, nodes) { $(id).replaceChildren(...nodes); }
function toggleEmpty(id, empty) { $(id).classList.toggle("hidden", !empty); }

function tone(label) {
  const s = SCORE[label];
  return s === undefined ? "" : s > 0 ? "pos" : s < 0 ? "neg" : "neu";
}
function fmt(x, digits = 2) { return x === null || x === undefined ? "–" : Number(x).toFixed(digits); }
function fmtInt(x) { return x === null || x === undefined ? "–" : Math.round(x).toLocaleString(); }
function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
}
function ago(ms, now) {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
}
function color(i) { return PALETTE[i % PALETTE.length]; }

/* --- header ----------------------------------------------------------------------------- */
function renderKpis(t) {
  $("kpi-results").textContent = fmtInt(t.results);
  $("kpi-rate").textContent = fmt(t.rate, 1);
  $("kpi-partial").textContent = fmtInt(t.partial);
  $("kpi-alerts").textContent = fmtInt(t.alerts_open);
  $("kpi-alerts").classList.toggle("alarm", t.alerts_open > 0);
  $("kpi-risk").textContent = fmtInt(t.at_risk);
  $("kpi-risk").classList.toggle("alarm", t.at_risk > 0);
  $("kpi-models").textContent = t.models ? `${t.models_live}/${t.models}` : "0";
}

/* --- results ---------------------------------------------------------------------------- */
let seenResults = new Set();
function taskBlock(t) {
  const chips = [];
  if (t.entities) {
    if (!t.entities.length) chips.push(h("span", { class: "chip" }, h("span", { class: "k" }, "entities"), "none"));
    for (const e of t.entities) {
      chips.push(h("span", { class: "chip ent", title: `${e.type}${e.sentiment ? " · " + e.sentiment : ""}` },
        e.text, h("span", { class: "k" }, e.type)));
    }
  } else {
    chips.push(h("span", { class: `chip ${tone(t.label)}`, title: `${t.strategy}${t.agreement !== null ? ", agreement " + fmt(t.agreement) : ""}` },
      h("span", { class: "k" }, t.task), t.label || "no answer",
      t.label && t.score !== null ? h("span", { class: "k" }, fmt(t.score)) : null,
      t.label && t.uncertain ? h("span", { class: "q", title: "uncertain: fused confidence under the threshold" }, "?") : null));
  }
  const votes = t.models.map((m, i) => [
    i ? " · " : "",
    h("b", {}, m.model),
    m.weight !== null ? ` ${fmt(m.weight)}` : "",
    m.error ? h("span", { class: "err", title: m.error }, " error") : m.label && !t.entities ? ` → ${m.label}` : "",
  ]);
  if (t.missing && t.missing.length) {
    votes.push(h("span", { class: "err", title: "the deadline passed before these models answered" },
      `${votes.length ? " · " : ""}missing ${t.missing.join(", ")}`));
  }
  return h("div", { class: "task", "data-task": t.task },
    h("div", { class: "chips" }, chips),
    h("div", { class: "votes" }, votes));
}
function renderResults(rows) {
  const now = new Set(rows.map((r) => r.id));
  fill("results", rows.map((r) => {
    const flags = [];
    if (r.partial) flags.push(h("span", { class: "chip flag", title: (r.missing || []).join(", ") }, "partial"));
    if (r.unserved.length) flags.push(h("span", { class: "chip flag" }, `unserved (${r.lang})`));
    return h("tr", { "data-id": r.id, class: seenResults.size && !seenResults.has(r.id) ? "fresh" : null },
      h("td", { class: "time", title: new Date(r.ts).toISOString() }, clock(r.ts)),
      h("td", { class: "feed" }, h("div", { class: "src" }, r.source), r.key ? h("div", { class: "key" }, r.key) : null),
      h("td", { class: "msg" }, h("div", {}, r.text), h("div", { class: "id" }, r.id, flags.length ? " " : "", flags)),
      h("td", { class: "outs" }, r.tasks.length ? r.tasks.map(taskBlock) : h("span", { class: "sub" }, "no task output")),
      h("td", { class: "num" }, r.latency_ms !== null ? `${fmtInt(r.latency_ms)} ms` : "–"));
  }));
  seenResults = now;
  toggleEmpty("results-empty", !rows.length);
}

/* --- alerts ----------------------------------------------------------------------------- */
const openEvidence = new Set();
function renderAlerts(alerts, now) {
  fill("alerts", alerts.map((a) => {
    const figs = Object.entries(a.figures || {}).map(([k, v]) => `${k} ${Number.isInteger(v) ? v : fmt(v)}`).join(" · ");
    const details = h("details", { class: "evidence", open: openEvidence.has(a.id) },
      h("summary", {}, `evidence: ${a.evidence_total} message${a.evidence_total === 1 ? "" : "s"}`),
      h("ul", {}, a.evidence.map((e) => h("li", { "data-id": e.id },
        h("span", { class: `dot ${tone(e.sentiment)}`, title: e.sentiment || "no sentiment" }),
        e.text ? e.text : h("span", { class: "sub" }, `${e.id} (not seen by this page)`)))));
    details.addEventListener("toggle", () => details.open ? openEvidence.add(a.id) : openEvidence.delete(a.id));
    return h("li", { class: `alert ${a.severity}`, "data-rule": a.rule, "data-key": a.key },
      h("div", { class: "head" },
        h("div", {}, h("span", { class: `sev ${a.severity}` }, a.severity), h("span", { class: "rule" }, a.rule.replace("_", " ")),
          " ", h("span", { class: "sub" }, `${a.dimension} ${a.key}`)),
        h("span", { class: "when", title: new Date(a.ts).toISOString() }, ago(a.ts, now))),
      h("div", { class: "msg" }, a.message),
      figs ? h("div", { class: "figs" }, figs) : null,
      details);
  }));
  $("alerts-count").textContent = alerts.length;
  $("alerts-count").classList.toggle("alarm", alerts.some((a) => a.severity === "critical"));
  toggleEmpty("alerts-empty", !alerts.length);
}

/* --- conversations at risk ---------------------------------------------------------------- */
function renderConversations(convs, now) {
  fill("conversations", convs.map((c) => h("li", { class: `conv ${c.level === "escalating" ? "escalating" : ""}`, "data-key": c.key },
    h("div", { class: "head" },
      h("span", {}, h("span", { class: "key" }, c.key), c.source ? h("span", { class: "sub" }, ` · ${c.source}`) : null),
      h("span", { class: "level" }, c.level)),
    h("div", { class: "why" }, c.escalation || `${c.negative} of the last ${c.of} turns negative`,
      c.last_ms ? ` · ${ago(c.last_ms, now)}` : ""),
    h("ol", { class: "turns" }, c.turns.slice(-4).map((t) => h("li", {},
      h("span", { class: `dot ${tone(t.sentiment)}`, title: t.sentiment || "no sentiment" }),
      t.text, t.intent ? h("span", { class: "intent" }, ` — ${t.intent}`) : null))))));
  $("conv-count").textContent = convs.length;
  $("conv-count").classList.toggle("alarm", convs.some((c) => c.level === "escalating"));
  toggleEmpty("conversations-empty", !convs.length);
}

/* --- models, throughput, allocation ---------------------------------------------------------- */
function renderModels(models) {
  fill("models", models.map((m) => h("tr", { class: m.live ? null : "stale", "data-model": m.model },
    h("td", { class: "model", title: m.workers ? `${m.workers} worker(s)` : "no live worker" }, m.model),
    h("td", {}, m.task || "–"),
    h("td", { class: "num" }, fmt(m.throughput, 1)),
    h("td", { class: "num" }, fmt(m.batch_size, 1)),
    h("td", { class: "num" }, fmt(m.per_item_ms, 2)),
    h("td", { class: "num" }, fmt(m.batch_ms, 1)),
    h("td", { class: `num lag ${m.lag > 100 ? "high" : ""}` }, fmtInt(m.lag)),
    h("td", { class: `num ${m.errors ? "err" : ""}` }, fmtInt(m.errors)),
    h("td", { class: "num" }, m.workers))));
  toggleEmpty("models-empty", !models.length);
}
function renderAllocation(tasks) {
  fill("allocation", tasks.map((t) => h("div", { class: "alloc", "data-task": t.task },
    h("h4", {}, t.task, h("span", { class: "sub" }, `${t.results} results${t.degraded ? ` · ${t.degraded} degraded` : ""}`)),
    t.models.map((m) => h("div", { class: "bar", title: `${m.count} of ${t.results}` },
      h("span", { class: "name" }, m.model),
      h("span", { class: "track" }, h("span", { class: "fill", style: `width:${Math.round(m.share * 100)}%` })),
      h("span", { class: "pct" }, `${Math.round(m.share * 100)}%`))))));
  toggleEmpty("allocation-empty", !tasks.length);
}

/* --- feeds ------------------------------------------------------------------------------------ */
function renderFeeds(feeds) {
  fill("feeds", feeds.map((f) => {
    const d = f.sentiment_dist || {};
    const pos = (d.positive || 0) + (d.bullish || 0), neg = (d.negative || 0) + (d.bearish || 0), neu = d.neutral || 0;
    const total = pos + neg + neu;
    const tops = [...(f.top_intents || []), ...(f.top_entities || [])].map(([k, n]) => `${k} (${n})`).join(", ");
    return h("div", { class: "feed", "data-source": f.source },
      h("div", { class: "head" }, h("span", { class: "name" }, f.source), h("span", { class: "n" }, `${f.count} msgs`)),
      h("div", { class: "sub" }, `${clock(f.start_ms)}–${clock(f.end_ms)} · mean ${f.sentiment_mean === null ? "–" : (f.sentiment_mean > 0 ? "+" : "") + fmt(f.sentiment_mean)}`),
      total ? h("div", { class: "dist", title: `${pos} positive · ${neu} neutral · ${neg} negative` },
        h("span", { class: "pos", style: `width:${(100 * pos) / total}%` }),
        h("span", { class: "neu", style: `width:${(100 * neu) / total}%` }),
        h("span", { class: "neg", style: `width:${(100 * neg) / total}%` })) : null,
      tops ? h("div", { class: "tops" }, tops) : null);
  }));
  toggleEmpty("feeds-empty", !feeds.length);
}

/* --- charts (uPlot) ----------------------------------------------------------------------------- */
function align(seriesMap, names) {
  // uPlot wants one shared x array: the union of every series' times, nulls where absent
  const xs = [...new Set(names.flatMap((n) => (seriesMap[n] || []).map((p) => p[0])))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = names.map((n) => {
    const col = new Array(xs.length).fill(null);
    for (const p of seriesMap[n] || []) col[index.get(p[0])] = p[1];
    return col;
  });
  return [xs, ...ys];
}
const zeroLine = {
  hooks: {
    draw: [(u) => {
      const y = u.valToPos(0, "y", true);
      const { ctx } = u;
      ctx.save();
      ctx.strokeStyle = "#afb8c1";
      ctx.setLineDash([4, 4]);
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(u.bbox.left, y);
      ctx.lineTo(u.bbox.left + u.bbox.width, y);
      ctx.stroke();
      ctx.restore();
    }],
  },
};
class LiveChart {
  constructor(el, height, opts) { this.el = el; this.height = height; this.opts = opts; this.plot = null; this.key = ""; }
  width() { return Math.max(280, this.el.clientWidth || 600); }
  update(names, data, labels) {
    const key = names.map((n) => (labels && labels[n]) || n).join("\u0001");
    if (!this.plot || key !== this.key) {
      if (this.plot) this.plot.destroy();
      this.key = key;
      const series = [{}, ...names.map((n, i) => ({
        label: (labels && labels[n]) || n, stroke: color(i), width: 2, spanGaps: true,
        points: { show: true, size: 5, fill: color(i) },
        value: (u, v) => (v === null || v === undefined ? "–" : this.opts.fmt(v)),
      }))];
      this.plot = new uPlot({
        width: this.width(), height: this.height, series, scales: this.opts.scales, padding: [12, 28, 0, 0],
        axes: this.opts.axes, plugins: this.opts.plugins || [], legend: { live: this.opts.live !== false },
        cursor: { drag: { x: false, y: false } },
      }, data, this.el);
    } else {
      this.plot.setData(data);
    }
  }
  resize() { if (this.plot) this.plot.setSize({ width: this.width(), height: this.height }); }
}
const axisStyle = { stroke: "#656d76", grid: { stroke: "#eef0f3", width: 1 }, ticks: { stroke: "#e3e6ea", width: 1 } };
const sentimentChart = new LiveChart($("sentiment-chart"), 300, {
  fmt: (v) => (v > 0 ? "+" : "") + v.toFixed(2),
  scales: { x: { time: true }, y: { auto: false, range: [-1.05, 1.05] } },
  axes: [{ ...axisStyle }, { ...axisStyle, values: (u, vals) => vals.map((v) => (v > 0 ? "+" : "") + v.toFixed(1)) }],
  plugins: [zeroLine],
});
const throughputChart = new LiveChart($("throughput-chart"), 190, {
  fmt: (v) => v.toFixed(1),
  live: false,
  scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.15)] } },
  axes: [{ ...axisStyle, values: (u, splits) => splits.map((v) => clock(v * 1000)) }, { ...axisStyle, size: 44 }],
});
window.addEventListener("resize", () => { sentimentChart.resize(); throughputChart.resize(); });

function renderSentiment(s) {
  $("bucket").textContent = s.bucket_s;
  $("rolling").textContent = s.rolling_s;
  const names = s.entities;
  const labels = {};
  for (const n of names) labels[n] = n === s.watch_found ? `${n} (tracked)` : n;
  if (names.length) sentimentChart.update(names, align(s.series, names), labels);
  $("sentiment-chart").classList.toggle("hidden", !names.length);
  toggleEmpty("sentiment-empty", !names.length);
  $("watch-note").textContent = s.watch
    ? (s.watch_found ? ` and ${s.watch_found}, tracked` : `; “${s.watch}” has not been seen yet`)
    : "";
}
function renderThroughput(points, models) {
  const names = models.map((m) => m.model).filter((m) => points[m] && points[m].length);
  if (names.length) throughputChart.update(names, align(points, names));
  $("throughput-chart").classList.toggle("hidden", !names.length);
}

/* --- the stream ------------------------------------------------------------------------------ */
function render(snap) {
  renderKpis(snap.totals);
  renderSentiment(snap.sentiment);
  renderAlerts(snap.alerts, snap.now);
  renderResults(snap.results);
  renderConversations(snap.conversations, snap.now);
  renderModels(snap.models);
  renderThroughput(snap.throughput, snap.models);
  renderAllocation(snap.allocation);
  renderFeeds(snap.feeds);
  $("foot-topics").textContent = `reading ${Object.values(snap.topics).join(", ")}` +
    (Object.keys(snap.errors).length ? ` · reader errors: ${Object.entries(snap.errors).map(([k, v]) => `${k}: ${v}`).join("; ")}` : "");
  $("foot-updated").textContent = `updated ${clock(snap.now)}`;
  document.body.dataset.version = snap.version;
}

let source = null;
function setConn(state, text) { const el = $("conn"); el.className = `conn ${state}`; el.textContent = text; }
function connect(watch) {
  if (source) source.close();
  const url = "events" + (watch ? `?watch=${encodeURIComponent(watch)}` : "");
  source = new EventSource(url);
  source.addEventListener("open", () => setConn("live", "live"));
  source.addEventListener("snapshot", (ev) => {
    setConn("live", "live");
    try { render(JSON.parse(ev.data)); } catch (err) { console.error("render failed", err); }
  });
  source.addEventListener("error", () => setConn(source.readyState === EventSource.CLOSED ? "down" : "connecting",
    source.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting"));
}

const input = $("watch");
const params = new URLSearchParams(location.search);
input.value = params.get("entity") || localStorage.getItem("streamfuse.watch") || "";
let debounce = null;
function applyWatch() {
  const v = input.value.trim();
  localStorage.setItem("streamfuse.watch", v);
  connect(v);
}
$("watch-form").addEventListener("submit", (ev) => { ev.preventDefault(); clearTimeout(debounce); applyWatch(); });
input.addEventListener("input", () => { clearTimeout(debounce); debounce = setTimeout(applyWatch, 600); });
connect(input.value.trim());
